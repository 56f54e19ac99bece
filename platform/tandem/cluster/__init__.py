"""Start, reach and describe the cluster and its pools (train, serve, batch)."""

from tandem.cluster.local import ClusterState, stop
from tandem.cluster.pools import OFF_SERVE, pool_options, pool_resources
from tandem.cluster.session import connect, gcs_address, jobs_api_address, running_state, up

__all__ = [
    "OFF_SERVE",
    "ClusterState",
    "connect",
    "gcs_address",
    "jobs_api_address",
    "pool_options",
    "pool_resources",
    "running_state",
    "stop",
    "up",
]
