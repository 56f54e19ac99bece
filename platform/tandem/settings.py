"""Process-wide settings, read from the environment in this one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT_BASE = 24000


@dataclass(frozen=True)
class Settings:
    home: Path
    """Where the embedded cluster keeps its state (``TANDEM_HOME``, default ``~/.tandem``)."""
    ray_address: str | None
    """A remote cluster's GCS address (``RAY_ADDRESS``); ``None`` means the embedded one."""
    port_base: int
    """First of the ports the embedded cluster uses (``TANDEM_PORT_BASE``)."""
    api_server_address: str | None
    """A remote cluster's jobs API (``RAY_API_SERVER_ADDRESS``, else an http ``RAY_ADDRESS``)."""
    cluster_file: Path
    """Launcher file whose pools the embedded cluster mirrors (``TANDEM_CLUSTER_FILE``)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("TANDEM_HOME") or Path.home() / ".tandem").expanduser()
        address = os.environ.get("RAY_ADDRESS") or None
        port_base = int(os.environ.get("TANDEM_PORT_BASE") or DEFAULT_PORT_BASE)
        api = os.environ.get("RAY_API_SERVER_ADDRESS") or None
        if api is None and address is not None and address.startswith(("http://", "https://")):
            api = address
        cluster_file = Path(os.environ.get("TANDEM_CLUSTER_FILE") or "cluster.yaml")
        return cls(
            home=home.resolve(),
            ray_address=address,
            port_base=port_base,
            api_server_address=api,
            cluster_file=cluster_file,
        )

    @property
    def embedded(self) -> bool:
        return self.ray_address is None

    @property
    def storage_uri(self) -> str:
        """Default fsspec root for runs and the registry."""
        return str(self.home / "storage")

    def resolve_uri(self, uri: str) -> str:
        """A relative local path is taken relative to the Tandem home, so a job
        finds its data whatever its working directory (Ray jobs run in a copy)."""
        if "://" in uri or Path(uri).expanduser().is_absolute():
            return str(Path(uri).expanduser()) if "://" not in uri else uri
        return str(self.home / uri)

    @property
    def auth_token_path(self) -> Path:
        return self.home / "auth_token"
