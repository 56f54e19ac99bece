"""Start and stop the embedded cluster: one pinned ``ray start`` process per node.

All process handling for the embedded cluster lives here. Each node is a
``ray start --block`` in its own session (process group) under the node's CPU
affinity and with ``CUDA_VISIBLE_DEVICES`` naming only the node's GPUs; the
raylet and every worker it forks inherit both.
``tandem down`` signals exactly those process groups, so a Ray cluster that
someone else started on this machine is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tandem.cluster.ingress import create_haproxy_state_dir, serve_env, stop_haproxy
from tandem.cluster.layout import HEAD, POLICY, EmbeddedLayout, NodePlan
from tandem.errors import ClusterError
from tandem.settings import LOOPBACK, Settings

STARTED_MARK = "Ray runtime started"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
SUPPORT_PROCESSES = (b"ray::DashboardAgent", b"ray::RuntimeEnvAgent", b"log_monitor.py")
"""How Ray's per-node support processes show in their command lines (Ray 2.60)."""
SUPPORT_START_S = 10.0
MIN_OBJECT_STORE_BYTES = 128 * 1024**2
HEALTH_CHECK_TIMEOUT_MS = 60_000
"""How long the GCS waits for a raylet's health-check answer (Ray's default: 10 s)."""


@dataclass(frozen=True)
class ClusterState:
    """What ``tandem up`` left behind so later commands can reach and stop the cluster."""

    gcs_address: str
    dashboard_url: str
    serve_http_port: int
    process_groups: dict[str, int]
    cores: dict[str, list[int]]
    pinned: bool
    gpus: dict[str, list[str]] = field(default_factory=dict)
    """Each node's GPUs (``CUDA_VISIBLE_DEVICES`` ids); empty in state files from before GPUs
    were split between pools."""
    borrowed_cores: dict[str, list[int]] = field(default_factory=dict)
    """Cores a node may also run on while their pool leaves them idle (``NodePlan``)."""

    @classmethod
    def read(cls, settings: Settings) -> ClusterState | None:
        path = settings.state_path
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def write(self, settings: Settings) -> None:
        path = settings.state_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    def alive(self) -> bool:
        return all(group_alive(pgid) for pgid in self.process_groups.values())


def group_alive(pgid: int) -> bool:
    # A node's leader is this process's child when this process started the
    # cluster: reap it if it died, or its zombie would count as alive.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ray_temp_dir(settings: Settings) -> Path:
    """Ray's temp folder of the head node (each pool node's is inside it: ``node_temp_dir``);
    kept short because Unix socket paths are limited to 107 bytes."""
    preferred = settings.home / "ray"
    if len(str(preferred)) <= 34:
        return preferred
    digest = hashlib.sha256(str(settings.home).encode()).hexdigest()[:10]
    return Path("/tmp") / f"tandem-{digest}"


def node_temp_dir(settings: Settings, node: str) -> Path:
    """Ray's temp folder of one node: the head's ``ray_temp_dir``, a pool node's a folder
    named after its pool inside it. Nodes on one machine must not share a session folder:
    a node's runtime-env agent deletes and unpacks a job's package again the first time it
    uses it, under the workers of every node that shares the folder (seen: a restarted
    serve node deleted the package the head's next job needed)."""
    head = ray_temp_dir(settings)
    return head if node == HEAD else head / node


def ray_log_dirs(settings: Settings) -> list[Path]:
    """Every node's Ray log folder of its current session, the head's first."""
    head = ray_temp_dir(settings)
    return [head / "session_latest" / "logs", *sorted(head.glob("*/session_latest/logs"))]


def ensure_auth_token(settings: Settings) -> Path:
    """The embedded cluster's Ray auth token, created once with owner-only permissions."""
    path = settings.auth_token_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path


def cluster_env(settings: Settings) -> dict[str, str]:
    """Environment every node (and so every worker and job driver) runs with."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(settings.auth_token_path),
        "TANDEM_HOME": str(settings.home),
        # Job entrypoints say `python ...`: make that this environment's Python.
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Idle workers started ahead of demand cost seconds of CPU each on a
        # small machine; start workers only when work asks for them.
        "RAY_enable_worker_prestart": "0",
        "RAY_prestart_worker_first_driver": "0",
        # `tandem down` stops nodes at once: a node told to stop otherwise drains for up
        # to 30 s, and Tandem's own stop has no work left to drain.
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        # Nor is a node of it ever drained by anyone else (no autoscaler, no reclaimed spot
        # instance): Ray Train's preemption watcher, which polls for that, would only be
        # one more process to start for every training job.
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
        # Throughput nodes run in the lowest-weight scheduling group on cores they share
        # with the head. In CI a busy head kept the train raylet from answering the GCS
        # health check for about a minute (five 10 s timeouts in a row; the batch raylet
        # missed one too), and the GCS declared the train node dead. A node that is really
        # gone refuses the connection at once, so it is still declared dead after Ray's
        # five checks 3 s apart.
        "RAY_health_check_timeout_ms": str(HEALTH_CHECK_TIMEOUT_MS),
        **serve_env(settings),
    }


def _total_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def node_env(plan: NodePlan) -> dict[str, str]:
    """What one node adds to ``cluster_env``: its workers' niceness, and its GPUs as the only
    ones CUDA shows its processes (none for the head and GPU-less pools). Ray hands each
    GPU task or actor ids from this list."""
    return {
        "RAY_worker_niceness": str(plan.worker_niceness),
        "CUDA_VISIBLE_DEVICES": ",".join(plan.gpus),
    }


def node_command(plan: NodePlan, layout: EmbeddedLayout, index: int, temp_dir: Path) -> list[str]:
    ports = layout.ports
    low, high = ports.worker_port_range(index)
    share = POLICY[plan.name].object_store_share
    store = max(MIN_OBJECT_STORE_BYTES, int(_total_memory_bytes() * share))
    ray = str(Path(sys.executable).parent / "ray")
    command = [ray, "start", "--block", "--disable-usage-stats"]
    if plan.name == HEAD:
        command += [
            "--head",
            f"--port={ports.gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports.dashboard}",
            f"--ray-client-server-port={ports.client_server}",
        ]
    else:
        command += [f"--address={LOOPBACK}:{ports.gcs}"]
    command += [f"--temp-dir={temp_dir}"]
    command += [f"--{flag}={port}" for flag, port in ports.node_ports(index).items()]
    command += [
        f"--node-ip-address={LOOPBACK}",
        f"--num-cpus={plan.num_cpus}",
        f"--num-gpus={plan.num_gpus}",
        f"--object-store-memory={store}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
        "--labels=" + ",".join(f"{k}={v}" for k, v in plan.labels.items()),
    ]
    if plan.resources:
        command.append("--resources=" + json.dumps(plan.resources))
    return command


def _launch(
    plan: NodePlan, command: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    cores = set(plan.affinity)
    group_niceness = plan.group_niceness
    idle_class = plan.idle_class

    def pin() -> None:  # runs in the child, after setsid, before exec; children inherit it
        os.sched_setaffinity(0, cores)
        if group_niceness:
            lower_group_priority(group_niceness)
        if idle_class:  # lowering the class needs no privilege
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
        start_new_session=True,
        preexec_fn=pin,
    )


def _support_to_idle_class(session: int) -> None:
    """Move a node's support processes (``SUPPORT_PROCESSES``) into the idle scheduling
    class, every thread; threads they start later inherit it. They still run whenever the
    node's cores have a moment free, and yield them the moment a request handler wakes.
    Waits up to ``SUPPORT_START_S`` for the raylet to have started them."""
    deadline = time.monotonic() + SUPPORT_START_S
    found: set[int] = set()
    while len(found) < len(SUPPORT_PROCESSES) and time.monotonic() < deadline:
        for pid, command in _session_commands(session).items():
            if pid not in found and any(marker in command for marker in SUPPORT_PROCESSES):
                with contextlib.suppress(OSError):
                    for task in os.listdir(f"/proc/{pid}/task"):
                        with contextlib.suppress(OSError):
                            os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))
                    found.add(pid)
        time.sleep(0.1)


def _session_commands(session: int) -> dict[int, bytes]:
    """Each process of a session (a node: its leader's pid is the session id): its command
    line."""
    commands = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == session:
                    commands[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
    return commands


def lower_group_priority(niceness: int) -> None:
    """Set this process's autogroup (its session's scheduling group) to ``niceness``; a
    no-op where the kernel has no autogroups. Lowering a priority needs no privilege."""
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(niceness))


def _wait_started(process: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if STARTED_MARK in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ClusterError(f"the {name} node exited while starting; its log ends:\n{tail}")
        time.sleep(0.2)
    raise ClusterError(
        f"the {name} node did not start within {START_TIMEOUT_S:.0f}s; see {log_path}"
    )


def start(layout: EmbeddedLayout, settings: Settings) -> ClusterState:
    """Start the head, then every pool node, each pinned to its cores.

    With the head still running, only the nodes that died are started again
    (the same ports and cores): a lost pool node comes back and its pool's work
    resumes there, never on another pool's node."""
    existing = ClusterState.read(settings)
    running: dict[str, int] = {}
    if existing is not None:
        if existing.alive():
            return existing
        if HEAD in existing.process_groups and group_alive(existing.process_groups[HEAD]):
            running = {n: g for n, g in existing.process_groups.items() if group_alive(g)}
        else:  # no head: whatever is left of the old cluster cannot rejoin
            _stop_groups(existing.process_groups)
    settings.home.mkdir(parents=True, exist_ok=True)
    ensure_auth_token(settings)
    create_haproxy_state_dir(settings)
    logs = settings.home / "logs"
    logs.mkdir(exist_ok=True)
    env = cluster_env(settings)
    started: dict[str, int] = {}
    try:
        for index, plan in enumerate(layout.nodes):
            if plan.name in running:
                continue
            log_path = logs / f"node-{plan.name}.log"
            log_path.write_bytes(b"")
            command = node_command(plan, layout, index, node_temp_dir(settings, plan.name))
            process = _launch(plan, command, {**env, **node_env(plan)}, log_path)
            started[plan.name] = process.pid
            # One at a time: raylets starting together on a shared core miss
            # their registration deadline.
            _wait_started(process, log_path, plan.name)
            if plan.support_in_idle_class:
                _support_to_idle_class(process.pid)
    except BaseException:
        _stop_groups(started)
        raise
    groups = {**running, **started}
    state = ClusterState(
        gcs_address=f"{LOOPBACK}:{layout.ports.gcs}",
        dashboard_url=f"http://{LOOPBACK}:{layout.ports.dashboard}",
        serve_http_port=layout.ports.serve_http,
        process_groups={plan.name: groups[plan.name] for plan in layout.nodes},
        cores={plan.name: list(plan.cores) for plan in layout.nodes},
        pinned=layout.pinned,
        gpus={plan.name: list(plan.gpus) for plan in layout.nodes},
        borrowed_cores={p.name: list(p.borrowed_cores) for p in layout.nodes if p.borrowed_cores},
    )
    state.write(settings)
    return state


def _stop_groups(groups: dict[str, int]) -> None:
    # Pool nodes first, the head (GCS) last, so raylets exit cleanly.
    ordered = [pgid for name, pgid in groups.items() if name != HEAD]
    ordered += [pgid for name, pgid in groups.items() if name == HEAD]
    stop_process_groups(ordered)


def stop_process_groups(pgids: list[int], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM each group in this order, wait up to ``timeout_s`` until they are gone,
    SIGKILL what is left and wait again: whatever they ran is gone when this returns."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(group_alive(p) for p in pgids):
            time.sleep(0.2)


def stop(settings: Settings) -> bool:
    """Stop the embedded cluster of ``settings.home``; ``False`` if none was running."""
    state = ClusterState.read(settings)
    if state is None:
        return False
    _stop_groups(state.process_groups)
    stop_haproxy(settings)
    (settings.state_path).unlink(missing_ok=True)
    return True
