"""What every group of ``Client`` methods shares: the settings of one cluster."""

from __future__ import annotations

from tandem.registry import Registry
from tandem.settings import Settings


class ClientBase:
    """The state ``Client.__init__`` sets up, as the method groups (mixins) see it."""

    settings: Settings
    """Which cluster and storage: ``TANDEM_HOME``, ``RAY_ADDRESS``, ``TANDEM_STORAGE``..."""

    def _registry(self) -> Registry:
        """The registry in the default storage (a new handle: it holds no state)."""
        return Registry.default(self.settings)
