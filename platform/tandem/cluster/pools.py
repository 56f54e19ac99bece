"""How work asks for its pool: a sliver of the pool's custom resource.

Asking for ``pool_<name>`` places a task or actor only on that pool's nodes,
on the embedded cluster (pinned raylets) and on a launcher-built one alike.
"""

from __future__ import annotations

import os

from tandem.cluster.layout import THROUGHPUT_NICENESS
from tandem.specs import POOL_LABEL, Pool, pool_resource

POOL_SLIVER = 0.001
OFF_SERVE = {POOL_LABEL: f"!{Pool.SERVE}"}
"""Ray label selector for work that may run on any node but a serve node."""


def pool_resources(pool: Pool) -> dict[str, float]:
    """Custom resources that pin work to ``pool``."""
    return {pool_resource(pool): POOL_SLIVER}


def pool_options(pool: Pool, num_cpus: float = 1, num_gpus: float = 0) -> dict[str, object]:
    """``.options(...)`` keyword arguments for a task or actor in ``pool``."""
    return {"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": pool_resources(pool)}


def run_at_throughput_priority() -> None:
    """Lower this process, and every thread it starts from now on, to the train and batch
    workers' nice level; never raises a priority.

    A job's driver runs where Ray's job supervisor runs: on the head node, in the head's
    scheduling group, beside HAProxy and Serve's controller and at their priority. Nice
    levels act inside a group, so this makes a training or batch driver (torch imports,
    Ray Data's streaming executor) yield the head's core to the request path. Linux keeps
    a nice level per thread: call it first thing, before Ray starts its threads."""
    if os.getpriority(os.PRIO_PROCESS, 0) < THROUGHPUT_NICENESS:
        os.setpriority(os.PRIO_PROCESS, 0, THROUGHPUT_NICENESS)


def usable_cores() -> int:
    """Cores this process may run on: its pool's cores when pinned."""
    return len(os.sched_getaffinity(0))
