"""Storage every node can reach: runs and the registry are read and written by jobs,
replicas and this process alike, so on a cluster whose nodes are on several
machines they must live on shared storage (s3://, gs://, a network mount), not on
one machine's disk.
"""

from __future__ import annotations

from tandem.errors import ClusterError
from tandem.settings import Settings


def is_local_path(uri: str) -> bool:
    """A path on this machine's disk (``/data/x``, ``file:///data/x``), not a remote store."""
    return "://" not in uri or uri.startswith("file://")


def shared_storage_problem(uri: str, node_hosts: set[str]) -> str | None:
    """Why ``uri`` cannot hold runs and the registry for nodes on ``node_hosts``, if it cannot.
    Nodes on one machine (the embedded cluster, or several raylets on one host) may share
    a local folder."""
    if not is_local_path(uri) or len(node_hosts) <= 1:
        return None
    return (
        f"storage {uri!r} is a local path, but the cluster's nodes are on "
        f"{len(node_hosts)} machines ({', '.join(sorted(node_hosts))}): each would see its "
        "own disk. Use storage every node reaches (s3://bucket/tandem, gs://…, or a network "
        "mount at the same path on every node): set TANDEM_STORAGE, or the spec's `storage:`."
    )


def node_hosts(settings: Settings) -> set[str]:
    """IP addresses of the cluster's alive nodes (through the state API)."""
    if settings.embedded:
        return set()  # one machine by construction
    from ray.util.state import list_nodes

    nodes = list_nodes(address=settings.remote_api_address, filters=[("state", "=", "ALIVE")])
    return {node.node_ip for node in nodes}


def require_shared(settings: Settings, uri: str) -> None:
    """``ClusterError`` when ``uri`` is a local path and the cluster spans machines."""
    if not is_local_path(uri) or settings.embedded:
        return
    problem = shared_storage_problem(uri, node_hosts(settings))
    if problem is not None:
        raise ClusterError(problem)
