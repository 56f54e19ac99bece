"""A private embedded cluster for a benchmark run (own home, own ports)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tandem.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def private_cluster(
    port_base: int, pinned: bool = True, work_conserving: bool = False
) -> Iterator[Settings]:
    """Start, connect, yield the settings, stop. Never touches a user's cluster."""
    import ray

    from tandem.cluster import local, session

    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as home:
        for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_DASHBOARD_ADDRESS"):
            os.environ.pop(name, None)
        os.environ.update(
            {
                "TANDEM_HOME": home,
                "TANDEM_PORT_BASE": str(port_base),
                "TANDEM_CLUSTER_FILE": str(REPO / "cluster.yaml"),
            }
        )
        settings = Settings.from_env()
        try:
            session.up(settings, pinned=pinned, work_conserving=work_conserving)
            session.connect(settings)
            yield settings
        finally:
            ray.shutdown()
            local.stop(settings)
