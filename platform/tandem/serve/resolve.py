"""Turn a spec's version refs (numbers or aliases) into the versions a replica loads.

The only place serving reads the registry's alias table, so a rollout is one new
``LiveVersions`` value computed here and pushed to replicas as their ``user_config``.
"""

from __future__ import annotations

from tandem.registry.store import Registry
from tandem.serve.routing import CanaryTarget, LiveVersions
from tandem.settings import Settings
from tandem.specs.deployment import DeploymentSpec


def open_registry(spec: DeploymentSpec, settings: Settings) -> Registry:
    return Registry(spec.storage) if spec.storage else Registry.default(settings)


def live_versions(spec: DeploymentSpec, registry: Registry) -> LiveVersions:
    """The spec's default, canary and pinned versions resolved against the registry now."""
    default = registry.resolve(spec.model, spec.version)
    canary = None
    if spec.canary is not None:
        canary = CanaryTarget(
            version=registry.resolve(spec.model, spec.canary.version), weight=spec.canary.weight
        )
    pinned = tuple(sorted({registry.resolve(spec.model, ref) for ref in spec.also_serve}))
    loaded = {default, *pinned} | ({canary.version} if canary else set())
    aliases = {a: v for a, v in registry.aliases(spec.model).items() if v in loaded}
    return LiveVersions(default=default, canary=canary, pinned=pinned, aliases=aliases)


def verified_live_versions(spec: DeploymentSpec, registry: Registry) -> LiveVersions:
    """The versions a deployment would serve, each checked against its sha256 first:
    a corrupt version fails here and the live deployment keeps what it serves."""
    live = live_versions(spec, registry)
    for version in sorted(live.loaded()):
        registry.verify(spec.model, version)
    return live
