"""Which loaded version answers a request: pins, aliases and the canary share.

Plain Python, unit-tested without Ray. ``LiveVersions`` is also the replica's
Serve ``user_config``: moving an alias or a canary only changes it, and Serve
applies a ``user_config`` change to running replicas in place (``reconfigure``),
so a rollout never restarts a replica and never drops a request.
"""

from __future__ import annotations

import reprlib

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tandem.errors import RequestError
from tandem.registry.manifest import version_number

NOT_FOUND = 404


class CanaryTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    weight: int = Field(ge=0, le=100)
    """Percent of unpinned requests sent to ``version``."""


class LiveVersions(BaseModel):
    """Resolved versions one deployment serves; aliases already turned into numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: int = Field(ge=1)
    """Answers requests that name no version (the spec's ``version``, resolved)."""
    canary: CanaryTarget | None = None
    pinned: tuple[int, ...] = ()
    """Further versions kept loaded for ``/versions/{v}`` requests."""
    aliases: dict[str, int] = Field(default_factory=dict)
    """Registry aliases whose version is loaded, usable as ``/versions/{alias}``."""

    @model_validator(mode="after")
    def _aliases_point_at_loaded(self) -> LiveVersions:
        stray = {a: v for a, v in self.aliases.items() if v not in self.loaded()}
        assert not stray, f"aliases {stray} point at versions that are not loaded"
        return self

    def loaded(self) -> frozenset[int]:
        versions = {self.default, *self.pinned}
        if self.canary is not None:
            versions.add(self.canary.version)
        return frozenset(versions)

    def resolve(self, ref: str) -> int:
        """The loaded version named by ``ref`` (a number or an alias); 404 otherwise."""
        number = version_number(ref)
        version = number if number is not None else self.aliases.get(ref)
        if version is None or version not in self.loaded():
            live = sorted(self.loaded())
            names = sorted(self.aliases)
            raise RequestError(
                f"version {reprlib.repr(ref)} is not served here; "
                f"live versions: {live}, aliases: {names}",
                NOT_FOUND,
            )
        return version

    def pick(self, ref: str | None, draw: float) -> int:
        """The version for one request; ``draw`` is uniform in [0, 1) (the canary coin)."""
        if ref is not None:
            return self.resolve(ref)
        if self.canary is not None and draw * 100 < self.canary.weight:
            return self.canary.version
        return self.default
