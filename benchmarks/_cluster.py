"""A private embedded cluster for a benchmark run (own home, own ports): the one the test
session starts (tests/private_cluster.py), in a temporary home at a chosen port base."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tandem.settings import Settings

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))  # after the rest: none of its modules shadows another
from private_cluster import private_env, running  # noqa: E402  (tests/ is not a package)


@contextmanager
def private_cluster(
    port_base: int, pinned: bool = True, work_conserving: bool = False
) -> Iterator[Settings]:
    """Start, connect, yield the settings, stop. Never touches a user's cluster."""
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as home:
        for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_DASHBOARD_ADDRESS"):
            os.environ.pop(name, None)
        os.environ.update(private_env(home, port_base))
        with running(Settings.from_env(), pinned, work_conserving) as settings:
            yield settings
