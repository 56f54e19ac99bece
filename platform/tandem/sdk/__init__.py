"""The Python SDK: ``Client`` and the typed objects its methods return."""

from tandem.sdk.client import AliasMove, Client, ModelSummary, Predictions
from tandem.sdk.handles import Job
from tandem.sdk.inference import DEFAULT_RETRY, RetryPolicy
from tandem.sdk.quickstart import QuickstartReport
from tandem.sdk.quickstart import run as run_quickstart

__all__ = [
    "DEFAULT_RETRY",
    "AliasMove",
    "Client",
    "Job",
    "ModelSummary",
    "Predictions",
    "QuickstartReport",
    "RetryPolicy",
    "run_quickstart",
]
