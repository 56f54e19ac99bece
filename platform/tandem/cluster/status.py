"""What the cluster looks like: nodes, their pools and resources, what runs there."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import ray
from ray.util import state as ray_state

from tandem.errors import SpecError
from tandem.specs import POOL_LABEL, Pool


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    pool: str
    alive: bool
    resources: dict[str, float]
    available: dict[str, float]
    cores: list[int]
    running: dict[str, int] = field(default_factory=dict)
    """Alive actors on the node by class name, with counts."""
    gpus: list[str] = field(default_factory=list)
    """The node's GPUs (``CUDA_VISIBLE_DEVICES`` ids) on the embedded cluster; on another
    cluster only their count is known (``resources["GPU"]``)."""

    def gpu_summary(self) -> str:
        """``0,1`` (ids known), ``2`` (a count only) or ``-`` (none)."""
        if self.gpus:
            return ",".join(self.gpus)
        count = self.resources.get("GPU", 0)
        return f"{count:g}" if count else "-"


@dataclass(frozen=True)
class ClusterStatus:
    address: str
    nodes: list[NodeStatus]

    def pools(self) -> list[str]:
        return sorted({node.pool for node in self.nodes})


def collect(
    address: str,
    cores: dict[str, list[int]] | None = None,
    gpus: dict[str, list[str]] | None = None,
) -> ClusterStatus:
    """Read the connected cluster's state (``ray.init`` must have been called); ``cores``
    and ``gpus``: what the embedded cluster gave each pool."""
    available = _available_by_node()
    actors = ray_state.list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=10_000)
    running: dict[str, Counter[str]] = {}
    for actor in actors:
        running.setdefault(actor.node_id or "", Counter())[actor.class_name] += 1
    nodes = []
    for info in ray.nodes():
        node_id = info["NodeID"]
        pool = info.get("Labels", {}).get(POOL_LABEL, "-")
        nodes.append(
            NodeStatus(
                node_id=node_id,
                pool=pool,
                alive=bool(info["Alive"]),
                resources={k: v for k, v in info["Resources"].items() if not _internal(k)},
                available={k: v for k, v in available.get(node_id, {}).items() if not _internal(k)},
                cores=(cores or {}).get(pool, []),
                running=dict(running.get(node_id, Counter())),
                gpus=(gpus or {}).get(pool, []),
            )
        )
    nodes.sort(key=lambda n: (not n.alive, n.pool))
    return ClusterStatus(address=address, nodes=nodes)


def pool_gpus(pool: Pool) -> float:
    """GPUs of the pool's largest alive node: the most one task or actor there can get
    (``ray.init`` must have been called)."""
    return max(
        (
            float(node["Resources"].get("GPU", 0))
            for node in ray.nodes()
            if node["Alive"] and node.get("Labels", {}).get(POOL_LABEL) == pool
        ),
        default=0.0,
    )


def require_pool_gpus(pool: Pool, wanted: float, field: str) -> None:
    """Refuse GPU work the embedded cluster's pool can never place (Ray would wait for it
    forever); ``field`` names the spec field asking for ``wanted`` GPUs. A launcher-built
    cluster may add GPU nodes on demand, so callers check only the embedded one."""
    check_gpus(pool, pool_gpus(pool), wanted, field)


def check_gpus(pool: Pool, available: float, wanted: float, field: str) -> None:
    """``SpecError`` naming ``field`` when ``wanted`` GPUs exceed the pool's ``available``."""
    if wanted > available:
        raise SpecError(
            field,
            [
                f"{field}: this asks for {wanted:g} GPU(s) in the {pool} pool, whose node has "
                f"{available:g}; give the {pool} node type GPUs in cluster.yaml "
                "(resources: {GPU: N}, see docs/gpus.md), or ask for none"
            ],
        )


def _internal(resource: str) -> bool:
    return resource.startswith("node:") or resource.endswith("memory")


def _available_by_node() -> dict[str, dict[str, float]]:
    from tandem.ray_private import available_resources_per_node

    return available_resources_per_node()
