"""The Python SDK: ``Client`` and the typed objects its methods return."""

from tandem.sdk.client import AliasMove, Client, ModelSummary, Predictions
from tandem.sdk.handles import Job
from tandem.sdk.inference import DEFAULT_RETRY, RetryPolicy

__all__ = [
    "DEFAULT_RETRY",
    "AliasMove",
    "Client",
    "Job",
    "ModelSummary",
    "Predictions",
    "RetryPolicy",
]
