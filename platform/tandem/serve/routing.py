"""Which loaded version answers a request: pins, aliases and the canary share; which
version silently re-runs a share of the default's requests (the shadow).

Plain Python, unit-tested without Ray. ``LiveVersions`` is also the replica's
Serve ``user_config``: moving an alias, a canary or a shadow only changes it, and Serve
applies a ``user_config`` change to running replicas in place (``reconfigure``),
so a rollout never restarts a replica and never drops a request.
"""

from __future__ import annotations

import reprlib

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tandem.errors import NotServed
from tandem.registry import version_number


class CanaryTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    weight: int = Field(ge=0, le=100)
    """Percent of unpinned requests sent to ``version``."""


class ShadowTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    share: int = Field(ge=0, le=100)
    """Percent of the requests the default version answers that ``version`` re-runs."""


class LiveVersions(BaseModel):
    """Resolved versions one deployment serves; aliases already turned into numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: int = Field(ge=1)
    """Answers requests that name no version (the spec's ``version``, resolved)."""
    canary: CanaryTarget | None = None
    shadow: ShadowTarget | None = None
    """Loaded, but never answers: it only re-runs a share of the default's requests."""
    pinned: tuple[int, ...] = ()
    """Further versions kept loaded for ``/versions/{v}`` requests."""
    aliases: dict[str, int] = Field(default_factory=dict)
    """Registry aliases whose version answers requests, usable as ``/versions/{alias}``."""

    @model_validator(mode="after")
    def _consistent(self) -> LiveVersions:
        if self.shadow is not None and self.shadow.version == self.default:
            raise ValueError(
                f"shadow version {self.default} is the default version: a shadow must be "
                "another version (comparing a version with itself tells nothing)"
            )
        stray = {a: v for a, v in self.aliases.items() if v not in self.served()}
        assert not stray, f"aliases {stray} point at versions that do not answer requests"
        return self

    def served(self) -> frozenset[int]:
        """Versions that answer requests: the default, the canary and the pinned ones."""
        versions = {self.default, *self.pinned}
        if self.canary is not None:
            versions.add(self.canary.version)
        return frozenset(versions)

    def loaded(self) -> frozenset[int]:
        """Versions a replica holds: those it serves, plus the shadow."""
        shadow = {self.shadow.version} if self.shadow is not None else set()
        return self.served() | shadow

    def resolve(self, ref: str) -> int:
        """The served version named by ``ref`` (a number or an alias); ``NotServed`` otherwise, also
        for a shadow-only version: its answers are compared, never returned."""
        number = version_number(ref)
        version = number if number is not None else self.aliases.get(ref)
        if version is None or version not in self.served():
            live = sorted(self.served())
            names = sorted(self.aliases)
            raise NotServed(
                f"version {reprlib.repr(ref)} is not served here; "
                f"live versions: {live}, aliases: {names}"
            )
        return version

    def pick(self, ref: str | None, draw: float) -> int:
        """The version for one request; ``draw`` is uniform in [0, 1) (the canary coin)."""
        if ref is not None:
            return self.resolve(ref)
        if self.canary is not None and draw * 100 < self.canary.weight:
            return self.canary.version
        return self.default

    def mirrors(self, ref: str | None, version: int, draw: float) -> ShadowTarget | None:
        """The shadow that re-runs this request: only a request the default version answers
        without naming a version, and only for ``share`` percent of draws (uniform in
        [0, 1), independent of the canary's)."""
        shadow = self.shadow
        if shadow is None or ref is not None or version != self.default:
            return None
        return shadow if draw * 100 < shadow.share else None
