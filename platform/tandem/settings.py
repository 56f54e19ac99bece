"""Process-wide settings, read from the environment in this one place.

Which cluster: ``RAY_ADDRESS`` unset, or naming the embedded cluster of
``TANDEM_HOME`` (as ``eval "$(tandem env)"`` sets it), means the embedded
cluster; anything else is a remote cluster, named either by its GCS address
(``host:6379``, what a driver's ``ray.init`` needs) or by its dashboard URL
(``http://host:8265``, what the jobs and state APIs need). Each is derived from
the other with Ray's default ports when only one is given.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT_BASE = 24000
SERVE_HTTP_OFFSET = 3
"""Serve's HTTP port is ``TANDEM_PORT_BASE + 3`` on every cluster Tandem starts Serve on."""
RAY_GCS_PORT = 6379
RAY_DASHBOARD_PORT = 8265
LOOPBACK = "127.0.0.1"
STATE_FILE = "cluster.json"


@dataclass(frozen=True)
class Settings:
    home: Path
    """Where the embedded cluster keeps its state (``TANDEM_HOME``, default ``~/.tandem``)."""
    ray_address: str | None
    """A remote cluster (``RAY_ADDRESS``: GCS ``host:port`` or dashboard URL); ``None`` means
    the embedded one."""
    port_base: int
    """First of the ports the embedded cluster uses (``TANDEM_PORT_BASE``); Serve's HTTP port
    is this plus 3 on any cluster."""
    api_server_address: str | None
    """A remote cluster's jobs API (``RAY_API_SERVER_ADDRESS``, else an http ``RAY_ADDRESS``)."""
    cluster_file: Path
    """Launcher file whose pools the embedded cluster mirrors (``TANDEM_CLUSTER_FILE``)."""
    storage: str | None = None
    """Root for runs and the registry (``TANDEM_STORAGE``); ``None``: ``$TANDEM_HOME/storage``."""
    serve_host: str = LOOPBACK
    """Interface Serve's HTTP proxy listens on (``TANDEM_SERVE_HOST``)."""
    attached: bool = False
    """``RAY_ADDRESS`` names the running embedded cluster: reach it, never (re)start it (a job
    driver on it, or a shell after ``eval "$(tandem env)"``)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("TANDEM_HOME") or Path.home() / ".tandem").expanduser().resolve()
        settings = cls(
            home=home,
            ray_address=None,
            port_base=int(os.environ.get("TANDEM_PORT_BASE") or DEFAULT_PORT_BASE),
            api_server_address=os.environ.get("RAY_API_SERVER_ADDRESS") or None,
            cluster_file=Path(os.environ.get("TANDEM_CLUSTER_FILE") or "cluster.yaml"),
            storage=os.environ.get("TANDEM_STORAGE") or None,
            serve_host=os.environ.get("TANDEM_SERVE_HOST") or LOOPBACK,
        )
        address = os.environ.get("RAY_ADDRESS") or None
        return settings if address is None else settings.at(address)

    def at(self, address: str) -> Settings:
        """These settings against the cluster ``address`` names: the embedded one when it is
        the embedded cluster's GCS address or dashboard URL (as ``tandem env`` exports them),
        else a remote one (an http address is also its jobs API)."""
        if address in embedded_addresses(self.home):
            return replace(self, ray_address=None, attached=True)
        api = address if is_url(address) else self.api_server_address
        return replace(self, ray_address=address, api_server_address=api, attached=False)

    @property
    def embedded(self) -> bool:
        return self.ray_address is None

    @property
    def storage_uri(self) -> str:
        """Default fsspec root for runs and the registry, for every command and job."""
        return self.resolve_uri(self.storage) if self.storage else str(self.home / "storage")

    def storage_for(self, storage: str | None) -> str:
        """Root for runs and the registry of a spec whose ``storage:`` is ``storage``: it,
        else ``TANDEM_STORAGE``, else ``$TANDEM_HOME/storage``."""
        return self.resolve_uri(storage) if storage else self.storage_uri

    def resolve_uri(self, uri: str) -> str:
        """A relative local path is taken relative to the Tandem home, so a job
        finds its data whatever its working directory (Ray jobs run in a copy)."""
        if "://" in uri or Path(uri).expanduser().is_absolute():
            return str(Path(uri).expanduser()) if "://" not in uri else uri
        return str(self.home / uri)

    @property
    def auth_token_path(self) -> Path:
        return self.home / "auth_token"

    @property
    def state_path(self) -> Path:
        """What ``tandem up`` wrote about the embedded cluster (addresses, ports, processes)."""
        return self.home / STATE_FILE

    @property
    def serve_http_port(self) -> int:
        return self.port_base + SERVE_HTTP_OFFSET

    @property
    def cluster_host(self) -> str:
        """The host clients reach the cluster on: loopback for the embedded cluster."""
        if self.ray_address is None:
            return LOOPBACK
        return address_host(self.ray_address)

    @property
    def remote_gcs_address(self) -> str:
        """A remote cluster's GCS address for ``ray.init`` (from a dashboard URL: port 6379)."""
        assert self.ray_address is not None, "the embedded cluster's address is in its state"
        if is_url(self.ray_address):
            return f"{address_host(self.ray_address)}:{RAY_GCS_PORT}"
        return self.ray_address.removeprefix("ray://")

    @property
    def remote_api_address(self) -> str:
        """A remote cluster's jobs/state API URL (from a GCS address: port 8265)."""
        if self.api_server_address is not None:
            return self.api_server_address
        return f"http://{self.cluster_host}:{RAY_DASHBOARD_PORT}"


def is_url(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def address_host(address: str) -> str:
    """The host of ``host:port``, ``ray://host:port`` or ``http://host:port``."""
    netloc = address.split("://", 1)[-1]
    return urlsplit(f"//{netloc}").hostname or LOOPBACK


def embedded_addresses(home: Path) -> set[str]:
    """The GCS address and dashboard URL of the embedded cluster ``tandem up`` started
    under ``home`` (empty when none was started)."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return set()
    found = {state.get("gcs_address"), state.get("dashboard_url")}
    return {str(address) for address in found if address}
