"""Clusters built from cluster.yaml on this one machine.

Two ways, both with token auth on and every port on loopback:

- ``launcher_commands`` / ``local_command``: the exact commands ``ray up`` runs on the
  head and on a worker, with only paths and ports rewritten (and ``ray stop`` and package
  installs dropped: the first would kill every Ray process on the machine).
- ``start_autoscaling_cluster`` (and the module-scoped ``autoscaling_cluster`` fixture): a
  head whose autoscaler launches cluster.yaml's node types as local ``ray start``
  processes through Ray's fake multi-node provider, the provider Ray's own autoscaler
  tests use. Only the provider and the sizes differ from cluster.yaml.

Every Ray process started here lives in a process group (session) started here, and is
stopped by signalling exactly those groups: never ``ray stop``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from conftest import CLUSTER_ENV_VARS
from factories import REPO
from tandem.cluster.local import group_alive, stop_process_groups

CLUSTER_FILE = REPO / "cluster.yaml"
LOOPBACK = "127.0.0.1"
VENV_BIN = str(Path(sys.executable).parent)
STARTED_MARK = "Ray runtime started"
# Where `ray up` puts the project on every node (cluster.yaml's file mount).
REMOTE_MOUNT = "/home/ubuntu/tandem"
LAUNCHER_GCS_PORT = 6379

# The autoscaler's loop period (Ray's default is 5 s); its own tests use 1 s.
AUTOSCALER_UPDATE_INTERVAL_S = 1

# Ray's fake provider names the head's node type this way; the head's entry in
# available_node_types must use it.
FAKE_HEAD_NODE_TYPE = "ray.head.default"
START_TIMEOUT_S = 90.0
# Grace after SIGTERM before SIGKILL. The fake provider's nodes are children of the head's
# autoscaler process and outlive a SIGTERM by many seconds; nothing of a test cluster is
# kept, so waiting longer buys nothing.
STOP_TIMEOUT_S = 3.0
# On SIGTERM, Ray 2.60's `ray start --block` marks its node draining and waits up to 30 s
# (RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S) before stopping; test nodes stop at once.
NO_DRAIN_ON_STOP = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}

T = TypeVar("T")


@dataclass(frozen=True)
class FakeSizes:
    """What the fake cluster changes in cluster.yaml's node types to fit this machine
    (2 cores, 24 GiB); every node is a set of local processes, so CPUs are bookkeeping."""

    node_cpus: int = 1
    """CPUs each pool node advertises: with one, two one-CPU replicas need two nodes."""
    max_workers_per_type: int = 2
    """Cap on each node type's max_workers (min_workers is capped at it too)."""
    object_store_bytes: int = 256 * 1024**2
    """Object store of every node, head included."""
    idle_timeout_minutes: float = 0.25
    """Ray's autoscaler accepts fractions of a minute; long enough that a node launched for
    pending work gets it before it counts as idle."""


# ---------------------------------------------------------------------------- processes


def free_port() -> int:
    """A loopback port nothing listens on now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nothing listens on now: every socket stays bound
    until all are chosen, so the kernel cannot hand the same port out twice (it did, for
    the dashboard and the Ray client server, and the head refused to start)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def short_temp_dir() -> Path:
    """A Ray ``--temp-dir``: short, because Unix socket paths are limited to 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="tdm-", dir="/tmp"))


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Ray address or token (nor the test session's
    TANDEM_* settings, which are no business of these clusters), with this venv's ``ray``
    and ``python`` first on PATH, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CLUSTER_ENV_VARS and not k.startswith("TANDEM_")
    }
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return {**env, **extra}


def node_env(**extra: str) -> dict[str, str]:
    """``clean_env`` for a Ray node this module starts (stops without draining)."""
    return clean_env(**NO_DRAIN_ON_STOP, **extra)


def start_group(command: str, env: dict[str, str], log: Path) -> int:
    """Run ``command`` under bash in a new session; returns its process group id."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return process.pid


def wait_started(pgid: int, log: Path, what: str) -> None:
    """Wait for ``ray start``'s success line in ``log``; fail with the log's tail."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if STARTED_MARK in text:
            return
        if not group_alive(pgid):
            raise RuntimeError(f"{what} exited while starting; {log} ends:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S:.0f}s; see {log}")


def wait_for(
    probe: Callable[[], T | None], timeout_s: float, what: str, period_s: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something other than ``None``; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(period_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


# ---------------------------------------------------------------------- cluster.yaml


def launcher_config() -> dict[str, Any]:
    """The project's cluster.yaml, as written."""
    config = yaml.safe_load(CLUSTER_FILE.read_text())
    assert isinstance(config, dict)
    return config


def launcher_commands(config: dict[str, Any], key: str) -> list[str]:
    """``config[key]`` without what must not run here: ``ray stop`` (it stops every Ray
    process on the machine) and package installs (this environment has them)."""
    return [
        cmd
        for cmd in config.get(key, [])
        if cmd.strip() != "ray stop" and not cmd.lstrip().startswith("pip install")
    ]


def local_command(command: str, mount: Path, gcs_port: int, flags: Sequence[str] = ()) -> str:
    """A launcher command rewritten for this machine: the project mount → ``mount``, Ray's
    GCS port → ``gcs_port`` (and the head's IP → loopback), no ``--autoscaling-config``
    (``ray up`` writes that file); ``flags`` are appended to ``ray start``."""
    command = command.replace(REMOTE_MOUNT, str(mount))
    command = re.sub(r"\s--autoscaling-config=\S+", "", command)
    command = command.replace(f"--port={LAUNCHER_GCS_PORT}", f"--port={gcs_port}")
    command = command.replace(f"$RAY_HEAD_IP:{LAUNCHER_GCS_PORT}", f"{LOOPBACK}:{gcs_port}")
    if "ray start" in command:
        command = " ".join([command, *flags])
    return command


def updater_env(node_type: dict[str, Any]) -> dict[str, str]:
    """What Ray's node updater exports before a start command on a cloud provider: the
    node type's resources and labels (``RAY_OVERRIDE_RESOURCES`` / ``RAY_OVERRIDE_LABELS``)."""
    env = {"RAY_OVERRIDE_RESOURCES": json.dumps(node_type.get("resources", {}))}
    if node_type.get("labels"):
        env["RAY_OVERRIDE_LABELS"] = json.dumps(node_type["labels"])
    return env


def copy_mount(source: Path, target: Path) -> None:
    """What the head's autoscaler does for each file mount (``rsync -avz``, no
    ``--delete``): copy the head's tree over the worker's, modes kept."""
    shutil.copytree(source, target, dirs_exist_ok=True, copy_function=shutil.copy2)


def auth_headers(token_path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_path.read_text().strip()}"}


def alive_nodes(dashboard_url: str, token_path: Path) -> list[dict[str, Any]]:
    """Alive nodes from the state API (HTTP, so no driver in this process)."""
    response = httpx.get(
        f"{dashboard_url}/api/v0/nodes",
        params={"detail": "true", "limit": "100"},
        headers=auth_headers(token_path),
        timeout=10,
    )
    response.raise_for_status()
    nodes = response.json()["data"]["result"]["result"]
    return [n for n in nodes if n["state"] == "ALIVE"]


# ------------------------------------------------------------- autoscaling cluster


@dataclass(frozen=True)
class AutoscalingCluster:
    """A head plus cluster.yaml's pool node types, launched on demand by Ray's autoscaler."""

    gcs_address: str
    """``127.0.0.1:PORT``: what ``ray.init`` and ``RAY_ADDRESS`` take."""
    dashboard_url: str
    """``http://127.0.0.1:PORT``: the jobs and state APIs."""
    token_path: Path
    """The cluster's Ray auth token (mode 600); every node was started with it."""
    storage: Path
    """A folder for runs and the registry that every node can read and write (all nodes
    are on this machine)."""
    config_path: Path
    """The autoscaling config the head runs (fake provider, cluster.yaml's node types)."""
    node_types: dict[str, dict[str, Any]]
    """Pool node types as the autoscaler sees them (resources, labels, min/max workers)."""
    temp_dir: Path
    """Ray's session folder (logs under ``session_latest/logs``)."""

    def client_env(self) -> dict[str, str]:
        """Environment for a driver or CLI that should reach this cluster, as a user sets it."""
        return {
            "RAY_ADDRESS": self.gcs_address,
            "RAY_API_SERVER_ADDRESS": self.dashboard_url,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "TANDEM_STORAGE": str(self.storage),
        }

    def alive_nodes(self) -> list[dict[str, Any]]:
        return alive_nodes(self.dashboard_url, self.token_path)

    def pool_nodes(self, pool: str) -> list[dict[str, Any]]:
        """Alive nodes whose ``tandem.io/pool`` label is ``pool``."""
        return [n for n in self.alive_nodes() if node_pool(n) == pool]

    def raylet_environments(self) -> list[dict[str, str]]:
        """The environment of each of this cluster's raylets (Linux ``/proc``)."""
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:  # exited meanwhile
                continue
            if not argv[0].endswith(b"/raylet") or str(self.temp_dir).encode() not in b" ".join(
                argv
            ):
                continue
            pairs = (entry.decode(errors="replace").partition("=") for entry in environ if entry)
            found.append({name: value for name, _, value in pairs})
        return found


def node_pool(node: dict[str, Any]) -> str | None:
    """A state-API node's ``tandem.io/pool`` label."""
    from tandem.specs.cluster import POOL_LABEL

    return (node.get("labels") or {}).get(POOL_LABEL)


def fake_cluster_config(
    launcher: dict[str, Any], gcs_address: str, sizes: FakeSizes
) -> dict[str, Any]:
    """cluster.yaml's node types under Ray's fake multi-node provider, sized for this machine.

    Kept from cluster.yaml: node type names, pool resources, labels, min_workers (capped at
    the max below). Changed: the provider, CPUs per node, GPUs (none), object store size,
    max_workers, the idle timeout. The rest mirrors Ray's fake_multi_node/example.yaml,
    which the wheel does not ship."""
    head_type = launcher["head_node_type"]
    types: dict[str, dict[str, Any]] = {}
    for name, body in launcher["available_node_types"].items():
        if name == head_type:
            continue
        resources = {k: v for k, v in body.get("resources", {}).items() if k not in ("CPU", "GPU")}
        resources.update(CPU=sizes.node_cpus, object_store_memory=sizes.object_store_bytes)
        most = min(body.get("max_workers", sizes.max_workers_per_type), sizes.max_workers_per_type)
        types[name] = {
            "resources": resources,
            "labels": dict(body.get("labels", {})),
            "node_config": {},
            "min_workers": min(body.get("min_workers", 0), most),
            "max_workers": most,
        }
    head = launcher["available_node_types"][head_type]
    types[FAKE_HEAD_NODE_TYPE] = {
        "resources": dict(head.get("resources", {})),
        "labels": dict(head.get("labels", {})),
        "node_config": {},
        "max_workers": 0,
    }
    return {
        "cluster_name": launcher["cluster_name"],
        "max_workers": sum(t["max_workers"] for t in types.values()),
        "upscaling_speed": launcher.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": sizes.idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            # Nodes share one IP here: the autoscaler must tell them apart by node id.
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            # Without it the provider points new nodes at <this machine's IP>:6379.
            "gcs_address": gcs_address,
        },
        "auth": {},
        "docker": {},
        "available_node_types": types,
        "head_node_type": FAKE_HEAD_NODE_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def write_token(path: Path) -> Path:
    """A fresh Ray auth token at ``path``, owner-only (what cluster.yaml's head does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path


def head_command(
    config: dict[str, Any],
    config_path: Path,
    ports: dict[str, int],
    temp_dir: Path,
    sizes: FakeSizes,
) -> list[str]:
    """``ray start`` for the head, with the fake head node type's resources and labels."""
    head = config["available_node_types"][FAKE_HEAD_NODE_TYPE]
    resources = dict(head["resources"])
    command = [
        f"{VENV_BIN}/ray",
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        # Ray 2.60 swaps a loopback --node-ip-address for this machine's IP
        # (services.resolve_ip_for_localhost), so nodes register under that IP; clients
        # still reach the GCS and the dashboard on 127.0.0.1.
        f"--node-ip-address={LOOPBACK}",
        f"--port={ports['gcs']}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={ports['dashboard']}",
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--ray-client-server-port={ports['client']}",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={resources.pop('CPU', 0)}",
        f"--num-gpus={resources.pop('GPU', 0)}",
        f"--object-store-memory={sizes.object_store_bytes}",
        f"--autoscaling-config={config_path}",
    ]
    if resources:
        command.append("--resources=" + json.dumps(resources))
    if head["labels"]:
        command.append("--labels=" + ",".join(f"{k}={v}" for k, v in head["labels"].items()))
    return command


@contextlib.contextmanager
def start_autoscaling_cluster(
    workdir: Path, sizes: FakeSizes = FakeSizes()
) -> Iterator[AutoscalingCluster]:
    """Start the head (its autoscaler then launches each pool's min_workers); wait for
    those nodes; stop every process of the cluster when the block ends."""
    from tandem.ray_private import validate_cluster_config

    names = ("gcs", "dashboard", "agent", "client")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    gcs_address = f"{LOOPBACK}:{ports['gcs']}"
    config = fake_cluster_config(launcher_config(), gcs_address, sizes)
    validate_cluster_config(config)  # the head's autoscaler runs the same check, less loudly
    config_path = workdir / "autoscaling.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    token_path = write_token(workdir / "auth" / "auth_token")
    storage = workdir / "storage"
    storage.mkdir()
    temp_dir = short_temp_dir()
    env = node_env(
        RAY_FAKE_CLUSTER="1",
        AUTOSCALER_UPDATE_INTERVAL_S=str(AUTOSCALER_UPDATE_INTERVAL_S),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_path),
        RAY_USAGE_STATS_ENABLED="0",
    )
    log = workdir / "head.log"
    command = " ".join(head_command(config, config_path, ports, temp_dir, sizes))
    pgid = start_group(command, env, log)
    node_types = {
        k: v for k, v in config["available_node_types"].items() if k != FAKE_HEAD_NODE_TYPE
    }
    cluster = AutoscalingCluster(
        gcs_address=gcs_address,
        dashboard_url=f"http://{LOOPBACK}:{ports['dashboard']}",
        token_path=token_path,
        storage=storage,
        config_path=config_path,
        node_types=node_types,
        temp_dir=temp_dir,
    )
    try:
        wait_started(pgid, log, "the autoscaling head")
        wait_for_min_workers(cluster)
        yield cluster
    finally:
        stop_process_groups([pgid], STOP_TIMEOUT_S)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_min_workers(cluster: AutoscalingCluster) -> None:
    """Wait until every node type has its min_workers alive (told apart by pool label)."""
    from tandem.specs.cluster import POOL_LABEL

    wanted = {t["labels"][POOL_LABEL]: t["min_workers"] for t in cluster.node_types.values()}

    def ready() -> bool | None:
        try:
            nodes = cluster.alive_nodes()
        except httpx.HTTPError:  # the dashboard comes up after `ray start` returns
            return None
        pools = [node_pool(node) for node in nodes]
        return True if all(pools.count(p) >= k for p, k in wanted.items()) else None

    wait_for(ready, START_TIMEOUT_S, f"each pool's min_workers to join ({wanted})")


@pytest.fixture(scope="module")
def autoscaling_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AutoscalingCluster]:
    """One autoscaling cluster for a test module (nothing connected to it yet)."""
    with start_autoscaling_cluster(tmp_path_factory.mktemp("autoscaling")) as cluster:
        yield cluster


# ------------------------------------------------------------------------ drivers


@contextlib.contextmanager
def connected(cluster: AutoscalingCluster) -> Iterator[None]:
    """This process as a driver of ``cluster``, with its token; restores the connection and
    auth settings it had before (a session's embedded cluster, say) when the block ends."""
    import ray

    previous = ray.get_runtime_context().gcs_address if ray.is_initialized() else None
    saved = {name: os.environ.get(name) for name in CLUSTER_ENV_VARS}
    ray.shutdown()
    for name in CLUSTER_ENV_VARS:
        os.environ.pop(name, None)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(cluster.token_path))
    reset_ray_auth()
    try:
        # Every fake node runs a log monitor over the same session folder, so forwarded
        # worker logs would arrive once per node; tests read results, not logs.
        ray.init(address=cluster.gcs_address, logging_level=logging.WARNING, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_ray_auth()
        if previous is not None:
            ray.init(address=previous, logging_level=logging.WARNING)


def reset_ray_auth() -> None:
    """Make Ray re-read RAY_AUTH_MODE and the token: it caches both per process."""
    from tandem import ray_private

    ray_private.reset_auth_cache()
