"""How HTTP reaches replicas on the embedded cluster: HAProxy in front of each
replica's own HTTP server (Serve's direct ingress), instead of Serve's Python proxy.

Ray Serve reads these settings from the environment of every node's processes,
so ``tandem.cluster.local.cluster_env`` adds them when it starts the nodes.
Every port and file HAProxy uses is derived from the cluster's port base and
home, so two embedded clusters on one machine never share one.
"""

from __future__ import annotations

from pathlib import Path

from tandem.cluster.layout import PortPlan
from tandem.settings import Settings

HAPROXY_METRICS_OFFSET = 5
HAPROXY_STATS_OFFSET = 6


def serve_env(settings: Settings, temp_dir: Path) -> dict[str, str]:
    """Serve's ingress flags for one embedded cluster; ``temp_dir`` is its short Ray temp dir
    (HAProxy's admin socket lives there, and Unix socket paths are limited to 107 bytes)."""
    ports = PortPlan(settings.port_base)
    low, high = ports.direct_ingress_range()
    middle = (low + high) // 2
    state = temp_dir / "haproxy"
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(low),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(middle),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(middle + 1),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(high),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state / "metrics.sock"),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.port_base + HAPROXY_METRICS_OFFSET),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.port_base + HAPROXY_STATS_OFFSET),
        # One event-loop thread: on a small serve pool more threads only contend.
        "RAY_SERVE_HAPROXY_NBTHREAD": "1",
    }
