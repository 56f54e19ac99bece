"""A private embedded cluster: its own TANDEM_HOME and ports, so it never touches a cluster
a user left running. The test session's ``cluster`` fixture and the benchmarks
(``benchmarks/_cluster.py``, which imports this by path) start theirs here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tandem loads Ray and torch: imported when a cluster starts
    from tandem.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def private_env(home: str | Path, port_base: int) -> dict[str, str]:
    """The variables that give a cluster its own home and ports, on the repo's cluster.yaml."""
    return {
        "TANDEM_HOME": str(home),
        "TANDEM_PORT_BASE": str(port_base),
        "TANDEM_CLUSTER_FILE": str(REPO / "cluster.yaml"),
    }


@contextmanager
def running(
    settings: Settings, pinned: bool = True, work_conserving: bool = False
) -> Iterator[Settings]:
    """Start the cluster ``settings`` name, connect, yield them; disconnect and stop it."""
    import ray

    from tandem.cluster import local, session

    try:
        session.up(settings, pinned=pinned, work_conserving=work_conserving)
        session.connect(settings)
        yield settings
    finally:
        ray.shutdown()
        local.stop(settings)
