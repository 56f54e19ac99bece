"""How HTTP reaches replicas on the embedded cluster: HAProxy in front of each
replica's own HTTP server (Serve's direct ingress), instead of Serve's Python proxy.

Ray Serve reads these settings from the environment of every node's processes,
so ``tandem.cluster.local.cluster_env`` adds them when it starts the nodes.
Every port and file HAProxy uses is derived from the cluster's port base and
home, so two embedded clusters on one machine never share one.

HAProxy is started by Serve's ``HAProxyManager`` actor, outside the node's
process group, so stopping the nodes does not stop it: ``stop_haproxy`` finds
this cluster's HAProxy by its config path and stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
from pathlib import Path

from tandem.cluster.layout import PortPlan
from tandem.settings import Settings

RETRY_ON = "conn-failure empty-response junk-response 502 504"


def haproxy_state_dir(settings: Settings) -> Path:
    """Where this cluster's HAProxy keeps its config and sockets.

    Serve nests them under a 56-character node id, and HAProxy refuses socket
    paths over 97 bytes, so the folder sits directly under /tmp."""
    digest = hashlib.sha256(str(settings.home).encode()).hexdigest()[:10]
    return Path("/tmp") / f"tandem-hap-{digest}"


def create_haproxy_state_dir(settings: Settings) -> None:
    """Owner-only: Serve gives HAProxy's admin socket mode 666, the folder keeps others out."""
    haproxy_state_dir(settings).mkdir(mode=0o700, exist_ok=True)


DRAINING_PERIOD_S = 3.0


def serve_env(settings: Settings) -> dict[str, str]:
    """Serve's ingress flags for one embedded cluster."""
    ports = PortPlan(settings.port_base)
    low, high = ports.direct_ingress_range()
    middle = (low + high) // 2
    side = ports.serve_ingress_ports()
    state = haproxy_state_dir(settings)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(low),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(middle),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(middle + 1),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(high),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state / "metrics.sock"),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(side["haproxy_metrics"]),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(side["haproxy_stats"]),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(side["fallback_proxy_http"]),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(side["fallback_proxy_grpc"]),
        # One event-loop thread: on a small serve pool more threads only contend.
        "RAY_SERVE_HAPROXY_NBTHREAD": "1",
        # HAProxy would log every request to a socket that Serve's HAProxyManager
        # parses into metrics (a fifth of a core at 1,800 req/s); the replicas
        # already count every request by model, version and status.
        "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
        # Inference is idempotent, so a request whose replica died under it (the
        # connection closed with no answer, or a 502/504) is replayed on another
        # replica. Never 503: that is deliberate backpressure.
        "RAY_SERVE_HAPROXY_RETRY_ON": RETRY_ON,
        # A replica leaving rotation keeps answering this long so that a load balancer
        # can deregister it (Serve's default, 30 s, is sized for a cloud ALB). Here the
        # balancer is this machine's HAProxy, which drops it on a reload well under a
        # second; 30 s made every undeploy and rollout wait half a minute.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAINING_PERIOD_S),
    }


def _haproxy_pids(state: Path) -> list[int]:
    """Processes whose command line names a file in ``state`` (HAProxy gets its config by path)."""
    needle = str(state).encode() + b"/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def stop_haproxy(settings: Settings) -> None:
    """Stop this cluster's HAProxy, if one runs, and remove its state folder."""
    state = haproxy_state_dir(settings)
    for pid in _haproxy_pids(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state, ignore_errors=True)
