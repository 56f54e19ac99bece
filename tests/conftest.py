"""Shared fixtures. Cluster tests start their own embedded cluster with their
own TANDEM_HOME and ports, so they never touch a cluster a user left running."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER_ENV_VARS = (
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "RAY_DASHBOARD_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
)
# Port bases for test clusters: below Linux's ephemeral range, away from the
# default embedded cluster (24000) and from each other.
TEST_PORT_BASES = [b for b in range(20000, 32000, 1000) if b != 24000]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    offset = os.getpid() % len(TEST_PORT_BASES)
    for i in range(len(TEST_PORT_BASES)):
        base = TEST_PORT_BASES[(offset + i) % len(TEST_PORT_BASES)]
        if all(_port_free(base + d) for d in (0, 1, 2, 3, 10, 20, 30, 40)):
            return base
    raise RuntimeError("no free port range for a test cluster")


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of this session's private embedded cluster (not started yet)."""
    saved = {name: os.environ.get(name) for name in (*CLUSTER_ENV_VARS, "TANDEM_HOME")}
    for name in CLUSTER_ENV_VARS:
        os.environ.pop(name, None)
    home = tmp_path_factory.mktemp("tandem-home")
    env = {
        "TANDEM_HOME": str(home),
        "TANDEM_PORT_BASE": str(free_port_base()),
        "TANDEM_CLUSTER_FILE": str(REPO / "cluster.yaml"),
    }
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def cluster(cluster_env: dict[str, str]) -> Iterator[Settings]:  # noqa: F821
    """A real embedded Ray cluster (head + train/serve/batch nodes), connected."""
    import ray

    from tandem.cluster import local, session
    from tandem.settings import Settings

    settings = Settings.from_env()
    try:
        session.up(settings)
        session.connect(settings)
        yield settings
    finally:
        ray.shutdown()
        local.stop(settings)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``after_all`` audit what the rest of the session left behind: run them last."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)
