"""Shared fixtures. Cluster tests start their own embedded cluster with their
own TANDEM_HOME and ports, so they never touch a cluster a user left running."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from private_cluster import REPO, private_env, running

if TYPE_CHECKING:  # tandem loads Ray and torch: only cluster tests import it, and late
    from tandem.settings import Settings
    from train_runs import TrainRuns
    from zoo import Zoo

SESSION_SETTINGS = pytest.StashKey["Settings"]()
CHECKED_IN_THE_BACKGROUND = pytest.StashKey[set[str]]()
BACKGROUND = {"train_pool_idle": "train_runs", "own_cluster": "zoo_jobs"}
"""Jobs started early, their results checked later: the fixture that starts them, under
the mark of the tests they run beside. Those tests leave room: ``train_pool_idle`` ones run
no training job on the session's cluster, ``own_cluster`` ones leave all of it idle."""
CLUSTER_ENV_VARS = (
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "RAY_DASHBOARD_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
)
CLUSTER_LOG_MARKS = ("Registering new node", "Health check failed", "death reason")
"""GCS log lines that say which nodes joined and how any was lost, shown after a failed
session (nodes register in start order: head, then the pools as cluster.yaml lists them)."""
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
    env = private_env(tmp_path_factory.mktemp("tandem-home"), free_port_base())
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def cluster(cluster_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A real embedded Ray cluster (head + train/serve/batch nodes), connected."""
    from tandem.settings import Settings

    settings = Settings.from_env()
    request.config.stash[SESSION_SETTINGS] = settings
    with running(settings):
        yield settings


@pytest.fixture(scope="session")
def zoo_jobs(cluster: Settings, tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """The zoo's four training jobs on the session's cluster (tests/zoo.py), submitted and
    not waited for, and their batch scoring as each version registers. ``test_models``
    waits for them."""
    from serving import ray_cli_env
    from tandem.data import write_digits
    from zoo import Zoo

    write_digits(str(cluster.home / "data" / "digits"))
    folder = tmp_path_factory.mktemp("model-specs")
    return Zoo(cluster.home, cluster.storage_uri, folder, ray_cli_env())


@pytest.fixture(scope="session")
def train_runs(cluster: Settings, tmp_path_factory: pytest.TempPathFactory) -> TrainRuns:
    """test_train's three jobs on the session's cluster (tests/train_runs.py), run one
    after another in a thread; ``test_train`` checks them."""
    from serving import ray_cli_env
    from tandem.data import write_digits
    from train_runs import TrainRuns

    write_digits(str(cluster.home / "data" / "digits"))
    return TrainRuns(cluster, tmp_path_factory.mktemp("train-specs"), ray_cli_env())


@pytest.fixture(autouse=True)
def start_background_jobs_beside_the_tests_that_leave_room(request: pytest.FixtureRequest) -> None:
    """The first test under a ``BACKGROUND`` mark starts that mark's jobs, when the session
    also checks them. Their train pool runs at the lowest scheduling weight, so the test's
    processes keep their share of the cores; ``run_order`` puts the checks just after."""
    checked = request.config.stash.get(CHECKED_IN_THE_BACKGROUND, set())
    for mark, fixture in BACKGROUND.items():
        if request.node.get_closest_marker(mark) and fixture in checked:
            request.getfixturevalue(fixture)


TIER_MARKS = {
    REPO / "tests/unit": pytest.mark.unit,
    REPO / "tests/integration": pytest.mark.cluster,
}
"""The folder decides a test's tier: ``-m unit`` (or ``-m "not cluster"``) runs tests/unit."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder, and put the tests in ``run_order``."""
    for item in items:
        for folder, mark in TIER_MARKS.items():
            if item.path.is_relative_to(folder):
                item.add_marker(mark)
    items.sort(key=run_order)
    config.stash[CHECKED_IN_THE_BACKGROUND] = {
        fixture
        for item in items
        for fixture in BACKGROUND.values()
        if fixture in getattr(item, "fixturenames", ())
    }


def run_order(item: pytest.Item) -> tuple[bool, bool, int]:
    """Cluster tests before unit tests, and the ``after_all`` audits of what the session
    left behind last of all. Among the cluster tests, each ``BACKGROUND`` mark's tests and
    then the checks of its jobs come last, in ``BACKGROUND``'s order: first the tests on
    the session's cluster that train; then those that train nothing, while test_train's
    jobs train (``train_runs``), and test_train's checks; then the tests on clusters of
    their own, while the session's cluster trains the zoo (``zoo_jobs``), and the zoo's
    checks. Files keep their order within each group (a stable sort)."""
    unit = item.get_closest_marker("unit") is not None
    return item.get_closest_marker("after_all") is not None, unit, background_group(item)


def background_group(item: pytest.Item) -> int:
    fixtures = getattr(item, "fixturenames", ())
    for rank, (mark, fixture) in enumerate(BACKGROUND.items()):
        if fixture in fixtures:
            return 2 * rank + 2
        if item.get_closest_marker(mark):
            return 2 * rank + 1
    return 0


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """After a failed session, say which of the shared cluster's nodes were lost, how, and
    what each lost raylet logged last: a lost node fails every test that needs its pool,
    and its logs are gone with CI's machine."""
    settings = config.stash.get(SESSION_SETTINGS, None)
    if exitstatus == 0 or settings is None:
        return
    from tandem.cluster.local import ray_log_dirs

    found = [logs for logs in ray_log_dirs(settings) if logs.exists()]
    if not found or not (found[0] / "gcs_server.out").exists():
        return  # the cluster never got as far as a GCS log
    gcs = (found[0] / "gcs_server.out").read_text(errors="replace").splitlines()
    lines = [line[:400] for line in gcs if any(mark in line for mark in CLUSTER_LOG_MARKS)]
    lost = re.findall(r"UNEXPECTED_TERMINATION.*node_id=(\w+)", "\n".join(lines))
    for logs in found:
        for raylet_log in sorted(logs.glob("raylet*.out")):
            text = raylet_log.read_text(errors="replace")
            if any(f"Setting node ID node_id={node_id}" in text for node_id in lost):
                lines += [f"{raylet_log}: {line[:400]}" for line in text.splitlines()[-15:]]
        exits = logs / "ray_process_exit.log"
        if exits.exists():
            lines += exits.read_text(errors="replace").splitlines()[-20:]
    if lines:
        terminalreporter.section("the shared cluster's nodes, as the GCS saw them")
        for line in lines[-80:]:
            terminalreporter.write_line(line)
