"""Start, reach and describe the cluster and its pools (train, serve, batch)."""

from tandem.cluster.jobs import JobHandle, JobInfo, list_jobs
from tandem.cluster.jobs import attach as attach_job
from tandem.cluster.jobs import submit as submit_job
from tandem.cluster.local import ClusterState, stop
from tandem.cluster.pools import pool_options
from tandem.cluster.session import connect, gcs_address, jobs_api_address, running_state, up
from tandem.cluster.status import ClusterStatus, NodeStatus, collect
from tandem.cluster.storage import require_shared

__all__ = [
    "ClusterState",
    "ClusterStatus",
    "JobHandle",
    "JobInfo",
    "NodeStatus",
    "attach_job",
    "collect",
    "connect",
    "gcs_address",
    "jobs_api_address",
    "list_jobs",
    "pool_options",
    "require_shared",
    "running_state",
    "stop",
    "submit_job",
    "up",
]
