"""Start, reach and describe the cluster and its pools (train, serve, batch)."""

from tandem.cluster.local import ClusterState, stop
from tandem.cluster.pools import pool_options
from tandem.cluster.session import connect, gcs_address, jobs_api_address, running_state, up

__all__ = [
    "ClusterState",
    "connect",
    "gcs_address",
    "jobs_api_address",
    "pool_options",
    "running_state",
    "stop",
    "up",
]
