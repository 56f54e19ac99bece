"""The Python SDK: ``Client`` and the typed objects its methods return."""

from tandem.cluster import ClusterStatus, NodeStatus
from tandem.sdk.client import Client
from tandem.sdk.handles import Job
from tandem.sdk.inference import DEFAULT_RETRY, RetryPolicy
from tandem.sdk.quickstart import QuickstartReport
from tandem.sdk.quickstart import run as run_quickstart
from tandem.sdk.types import (
    AliasMove,
    Canary,
    Deployment,
    EmbeddedCluster,
    JobSummary,
    ModelSummary,
    Predictions,
    Shadow,
    WrittenData,
)

__all__ = [
    "DEFAULT_RETRY",
    "AliasMove",
    "Canary",
    "Client",
    "ClusterStatus",
    "Deployment",
    "EmbeddedCluster",
    "Job",
    "JobSummary",
    "ModelSummary",
    "NodeStatus",
    "Predictions",
    "QuickstartReport",
    "RetryPolicy",
    "Shadow",
    "WrittenData",
    "run_quickstart",
]
