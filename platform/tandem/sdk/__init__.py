"""The Python SDK: ``Client`` and the typed objects its methods return."""

from tandem.sdk.client import AliasMove, Client, ModelSummary, Predictions
from tandem.sdk.handles import Job

__all__ = ["AliasMove", "Client", "Job", "ModelSummary", "Predictions"]
