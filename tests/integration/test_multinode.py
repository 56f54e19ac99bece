"""cluster.yaml beyond one machine, run on this one: the launcher's own start commands
come up authenticated, and its pool node types autoscale under Ray's fake multi-node
provider with every pool's work on its pool's nodes."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from multinode import (
    STOP_TIMEOUT_S,
    AutoscalingCluster,
    auth_headers,
    autoscaling_cluster,
    clean_env,
    connected,
    copy_mount,
    free_ports,
    launcher_commands,
    launcher_config,
    local_command,
    node_env,
    node_pool,
    short_temp_dir,
    start_group,
    updater_env,
    wait_for,
    wait_started,
)
from tandem.cluster import pool_options
from tandem.cluster.local import stop_process_groups
from tandem.specs.cluster import POOL_LABEL

__all__ = ["autoscaling_cluster"]  # the fixture, for pytest and for the integrator's tests
pytestmark = pytest.mark.own_cluster

TOKEN = ".cluster-auth/auth_token"
LAUNCH_TIMEOUT_S = 120.0
# Idle timeout (15 s) plus the autoscaler's loop and the node's drain.
REMOVAL_TIMEOUT_S = 120.0


# ------------------------------------------------------------ ray up's own commands


def run_setup(commands: list[str], mount: Path, env: dict[str, str]) -> None:
    for command in commands:
        subprocess.run(
            ["bash", "-c", local_command(command, mount, 0)], env=env, check=True, timeout=60
        )


def test_cluster_yaml_passes_ray_ups_checks() -> None:
    """``ray up`` runs prepare_config then validate_config; the token steps survive the
    merge of setup_commands, and the head still installs boto3 (Ray's AWS default)."""
    from tandem.ray_private import prepare_cluster_config, validate_cluster_config

    config = prepare_cluster_config(launcher_config())
    validate_cluster_config(config)
    head_setup = " ".join(config["head_setup_commands"])
    assert "boto3" in head_setup
    assert "ray get-auth-token --generate" in head_setup
    path = f"RAY_AUTH_TOKEN_PATH=/home/ubuntu/tandem/{TOKEN}"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c and path in c for c in starts), key
    assert ".cluster-auth" not in " ".join(config["rsync_exclude"])


def test_head_setup_creates_a_token_once_and_keeps_the_users(tmp_path: Path) -> None:
    setup = launcher_commands(launcher_config(), "head_setup_commands")
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home))

    created = tmp_path / "created"
    run_setup(setup, created, env)
    token = created / TOKEN
    first = token.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", first), first
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert not (home / ".ray").exists(), "generated under a scratch HOME, no second copy"
    run_setup(setup, created, env)
    assert token.read_text() == first, "a second `ray up` must keep the head's token"

    provided = tmp_path / "provided"
    (provided / TOKEN).parent.mkdir(parents=True)
    (provided / TOKEN).write_text("my-own-secret\n")
    (provided / TOKEN).chmod(0o644)
    run_setup(setup, provided, env)
    assert (provided / TOKEN).read_text() == "my-own-secret\n"
    assert stat.S_IMODE((provided / TOKEN).stat().st_mode) == 0o600


DRIVER = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([{"labels": n["Labels"], "resources": n["Resources"]}
                  for n in ray.nodes() if n["Alive"]]))
"""


def test_launcher_start_commands_bring_up_an_authenticated_head_and_worker(
    tmp_path: Path,
) -> None:
    """The head and worker start commands of cluster.yaml, as ``ray up`` runs them, with
    paths and ports rewritten: the head makes the token, the worker gets it only through
    the file mount, and only token holders get in."""
    started = time.monotonic()
    config = launcher_config()
    types = config["available_node_types"]
    head_type = config["head_node_type"]
    worker_type = next(name for name in types if name != head_type)
    gcs, dashboard, client, head_agent, worker_agent = free_ports(5)
    nodes = {name: tmp_path / name for name in ("head", "worker")}
    for root in nodes.values():
        (root / "home").mkdir(parents=True)
    head_mount, worker_mount = nodes["head"] / "tandem", nodes["worker"] / "tandem"
    temp_dirs = [short_temp_dir(), short_temp_dir()]
    head_flags = [
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dirs[0]}",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={head_agent}",
    ]
    worker_flags = [
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dirs[1]}",
        f"--dashboard-agent-listen-port={worker_agent}",
    ]

    def env(node: str, node_type: str) -> dict[str, str]:
        # No RAY_AUTH_TOKEN and an empty HOME (no ~/.ray/auth_token): the token can only
        # come from the file the start command names.
        return node_env(
            HOME=str(nodes[node] / "home"),
            RAY_USAGE_STATS_ENABLED="0",
            **updater_env(types[node_type]),
        )

    run_setup(launcher_commands(config, "head_setup_commands"), head_mount, env("head", head_type))
    [head_start] = launcher_commands(config, "head_start_ray_commands")
    [worker_start] = launcher_commands(config, "worker_start_ray_commands")
    groups: list[int] = []
    try:
        head_log = tmp_path / "head.log"
        groups.append(
            start_group(
                local_command(head_start, head_mount, gcs, head_flags),
                env("head", head_type),
                head_log,
            )
        )
        wait_started(groups[0], head_log, "the head")

        # Before the mount reaches it, the worker has no token and Ray refuses to start.
        worker_mount.mkdir()
        refused = subprocess.run(
            ["bash", "-c", local_command(worker_start, worker_mount, gcs, worker_flags)],
            env=env("worker", worker_type),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0, refused.stdout + refused.stderr
        assert "RAY_AUTH_TOKEN_PATH" in refused.stdout + refused.stderr

        copy_mount(head_mount, worker_mount)  # what the head's autoscaler does first
        worker_log = tmp_path / "worker.log"
        groups.append(
            start_group(
                local_command(worker_start, worker_mount, gcs, worker_flags),
                env("worker", worker_type),
                worker_log,
            )
        )
        wait_started(groups[1], worker_log, "the worker")

        driver = subprocess.run(
            [sys.executable, "-c", DRIVER, f"127.0.0.1:{gcs}"],
            env=clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(head_mount / TOKEN)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert driver.returncode == 0, driver.stderr[-3000:]
        alive = json.loads(driver.stdout.strip().splitlines()[-1])
        pools = sorted(n["labels"].get(POOL_LABEL) for n in alive)
        worker_pool = types[worker_type]["labels"][POOL_LABEL]
        assert pools == sorted([types[head_type]["labels"][POOL_LABEL], worker_pool]), alive
        worker = next(n for n in alive if n["labels"].get(POOL_LABEL) == worker_pool)
        assert worker["resources"] == {**worker["resources"], **types[worker_type]["resources"]}

        jobs = f"http://127.0.0.1:{dashboard}/api/jobs/"
        assert httpx.get(jobs, timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer " + "0" * 64}
        assert httpx.get(jobs, headers=wrong, timeout=10).status_code == 403
        assert (
            httpx.get(jobs, headers=auth_headers(head_mount / TOKEN), timeout=10).status_code == 200
        )
    finally:
        stop_process_groups(list(reversed(groups)), STOP_TIMEOUT_S)
        for temp in temp_dirs:
            subprocess.run(["rm", "-rf", str(temp)], check=False)
    print(
        f"\nlauncher commands: head + worker up, checked, stopped in "
        f"{time.monotonic() - started:.1f}s"
    )


# --------------------------------------------------------------- autoscaling pools


@ray.remote
def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def driver(autoscaling_cluster: AutoscalingCluster) -> Iterator[AutoscalingCluster]:
    """This test process connected to the autoscaling cluster."""
    with connected(autoscaling_cluster):
        yield autoscaling_cluster


def pool_of(node: str) -> str | None:
    """The pool label of the (alive or dead) node with id ``node``."""
    for entry in ray.nodes():
        if entry["NodeID"] == node:
            return entry["Labels"].get(POOL_LABEL)
    return None


def test_nodes_join_only_with_the_token(driver: AutoscalingCluster) -> None:
    """Nodes the autoscaler launched inherit the head's token settings (and joined its
    auth-on GCS with them); a client without the token is refused."""
    nodes = driver.alive_nodes()
    assert {node_pool(n) for n in nodes} >= {"head", "train", "serve"}
    raylets = driver.raylet_environments()
    assert len(raylets) == len(nodes)
    for env in raylets:
        assert env.get("RAY_AUTH_MODE") == "token"
        assert env.get("RAY_AUTH_TOKEN_PATH") == str(driver.token_path)
    assert httpx.get(f"{driver.dashboard_url}/api/jobs/", timeout=10).status_code == 401


def test_batch_work_launches_a_batch_node_that_goes_away_when_idle(
    driver: AutoscalingCluster,
) -> None:
    assert driver.node_types["batch"]["min_workers"] == 0
    assert driver.pool_nodes("batch") == [], "batch has min_workers 0: no node before work"
    requested = time.monotonic()
    ran_on = node_id.options(**pool_options("batch")).remote()
    launched = wait_for(
        lambda: driver.pool_nodes("batch") or None, LAUNCH_TIMEOUT_S, "a batch node"
    )
    launch_to_ready = time.monotonic() - requested
    node = ray.get(ran_on, timeout=LAUNCH_TIMEOUT_S)
    done = time.monotonic()
    timings = f"launch-to-ready {launch_to_ready:.1f}s"
    assert [n["node_id"] for n in launched] == [node], timings
    assert pool_of(node) == "batch", timings

    wait_for(
        lambda: True if not driver.pool_nodes("batch") else None,
        REMOVAL_TIMEOUT_S,
        f"the idle batch node to be removed ({timings})",
        period_s=0.5,
    )
    idle_to_removed = time.monotonic() - done
    timings += f", idle-to-removed {idle_to_removed:.1f}s"
    print(f"\nbatch node: {timings}")
    assert not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == node), timings


def test_train_work_lands_on_train_nodes(driver: AutoscalingCluster) -> None:
    nodes = ray.get([node_id.options(**pool_options("train")).remote() for _ in range(4)])
    assert {pool_of(n) for n in nodes} == {"train"}


@serve.deployment(ray_actor_options=pool_options("serve", num_cpus=1))
class Where:
    """Answers with the node it runs on."""

    def __call__(self) -> str:
        return ray.get_runtime_context().get_node_id()


def test_serve_replicas_land_on_serve_nodes_and_scale_out(driver: AutoscalingCluster) -> None:
    serve_nodes = driver.pool_nodes("serve")
    assert len(serve_nodes) == 1, serve_nodes
    cpus = driver.node_types["serve"]["resources"]["CPU"]
    serve.start(proxy_location="Disabled")  # replicas are reached by handle; no ports
    try:
        handle = serve.run(Where.options(num_replicas=1).bind(), name="where", route_prefix=None)
        assert handle.remote().result(timeout_s=60) == serve_nodes[0]["node_id"]

        # One replica more than a serve node has CPUs for: Serve alone cannot place it.
        requested = time.monotonic()
        replicas = int(cpus) + 1
        handle = serve.run(
            Where.options(num_replicas=replicas).bind(), name="where", route_prefix=None
        )
        timing = f"scale-out ready in {time.monotonic() - requested:.1f}s"
        now = driver.pool_nodes("serve")
        assert len(now) == 2, f"{len(now)} serve nodes for {replicas} replicas ({timing})"
        seen = replica_nodes(handle, want=2)
        assert seen == {n["node_id"] for n in now}, f"replicas on {seen}, serve nodes {now}"
        print(f"\nserve: {replicas} replicas on 2 serve nodes, {timing}")
    finally:
        serve.shutdown()


def replica_nodes(handle: Any, want: int, calls: int = 200) -> set[str]:
    """Nodes the replicas behind ``handle`` answer from (stops once ``want`` are seen)."""
    seen: set[str] = set()
    for _ in range(calls):
        seen.add(handle.remote().result(timeout_s=30))
        if len(seen) >= want:
            break
    return seen
