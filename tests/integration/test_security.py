"""Security of the embedded cluster: what listens where, and which secrets reach logs."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tandem.cluster import local
from tandem.cluster.layout import PortPlan
from tandem.serve import control
from tandem.settings import Settings

pytestmark = pytest.mark.train_pool_idle  # test_train's jobs train meanwhile

LISTEN = "0A"
SERVE_TEST_TOKEN = "t0ken-for-tests"
"""The bearer token tests/integration/test_serve.py::test_auth deploys with."""


def listening_addresses(port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local_address, state = line.split()[1], line.split()[3]
            host, hex_port = local_address.split(":")
            if state != LISTEN or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(host)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, width, 4)]
            found.add(str(ipaddress.ip_address(b"".join(words))))
    return found


def test_dashboard_jobs_api_and_serve_listen_on_loopback_only(cluster: Settings) -> None:
    control.deployments(cluster)  # starts Serve (its HTTP ingress) if no test has yet
    ports = PortPlan(cluster.port_base)
    for name, port in (("dashboard/jobs API", ports.dashboard), ("Serve HTTP", ports.serve_http)):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on the {name} port {port}"
        loopback = {a for a in addresses if ipaddress.ip_address(a).is_loopback}
        mapped = {a for a in addresses if a.startswith("::ffff:127.")}
        assert addresses == loopback | mapped, (name, addresses)


@pytest.mark.after_all
def test_no_token_appears_in_any_log(cluster: Settings) -> None:
    """The cluster's Ray auth token and the endpoint bearer token used by the serving
    tests never reach a log file of the session (node logs and every Ray log)."""
    secrets = [cluster.auth_token_path.read_text().strip(), SERVE_TEST_TOKEN]
    folders = [cluster.home / "logs", local.ray_temp_dir(cluster)]
    files = [
        p for folder in folders for p in folder.rglob("*") if p.is_file() and not p.is_socket()
    ]
    logs = [p for p in files if p.suffix in (".log", ".out", ".err") or "log" in p.parent.name]
    assert len(logs) > 20, "expected the session's Ray logs"
    leaks = [str(p) for p in logs for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []
