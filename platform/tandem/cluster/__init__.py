"""Start, reach and describe the cluster and its pools (train, serve, batch).

Jobs and status load Ray's job-submission and state clients (some hundred modules more):
their names are bound on first use, so a serve replica that only needs pool placement
does not pay for them.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.cluster.local import ClusterState, stop
from tandem.cluster.pools import (
    OFF_SERVE,
    pool_options,
    pool_resources,
    run_at_throughput_priority,
    usable_cores,
)
from tandem.cluster.session import connect, gcs_address, jobs_api_address, running_state, up
from tandem.cluster.storage import require_shared

if TYPE_CHECKING:
    from tandem.cluster.jobs import (
        JobHandle,
        JobInfo,
        attach,
        current_submission_id,
        list_jobs,
        submit,
    )
    from tandem.cluster.status import ClusterStatus, NodeStatus, collect, require_pool_gpus
else:
    __getattr__ = lazy_exports(
        __name__,
        {
            "tandem.cluster.jobs": (
                "JobHandle",
                "JobInfo",
                "attach",
                "current_submission_id",
                "list_jobs",
                "submit",
            ),
            "tandem.cluster.status": (
                "ClusterStatus",
                "NodeStatus",
                "collect",
                "require_pool_gpus",
            ),
        },
    )

__all__ = [
    "OFF_SERVE",
    "ClusterState",
    "ClusterStatus",
    "JobHandle",
    "JobInfo",
    "NodeStatus",
    "attach",
    "collect",
    "connect",
    "current_submission_id",
    "gcs_address",
    "jobs_api_address",
    "list_jobs",
    "pool_options",
    "pool_resources",
    "require_pool_gpus",
    "require_shared",
    "run_at_throughput_priority",
    "running_state",
    "stop",
    "submit",
    "up",
    "usable_cores",
]
