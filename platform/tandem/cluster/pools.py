"""How work asks for its pool: a sliver of the pool's custom resource.

Asking for ``pool_<name>`` places a task or actor only on that pool's nodes,
on the embedded cluster (pinned raylets) and on a launcher-built one alike.
"""

from __future__ import annotations

import os

from tandem.specs.cluster import pool_resource

POOL_SLIVER = 0.001


def pool_resources(pool: str) -> dict[str, float]:
    """Custom resources that pin work to ``pool``."""
    return {pool_resource(pool): POOL_SLIVER}


def pool_options(pool: str, num_cpus: float = 1, num_gpus: float = 0) -> dict[str, object]:
    """``.options(...)`` keyword arguments for a task or actor in ``pool``."""
    return {"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": pool_resources(pool)}


def usable_cores() -> int:
    """Cores this process may run on: its pool's cores when pinned."""
    return len(os.sched_getaffinity(0))
