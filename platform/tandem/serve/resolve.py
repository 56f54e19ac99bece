"""Turn a spec's version refs (numbers or aliases) into the versions a replica loads.

The only place serving reads the registry's alias table, so a rollout is one new
``LiveVersions`` value computed here and pushed to replicas as their ``user_config``.
"""

from __future__ import annotations

from tandem.registry import Registry
from tandem.serve.routing import CanaryTarget, LiveVersions, ShadowTarget
from tandem.settings import Settings
from tandem.specs import DeploymentSpec


def open_registry(spec: DeploymentSpec, settings: Settings) -> Registry:
    return Registry(settings.storage_for(spec.storage))


def live_versions(spec: DeploymentSpec, registry: Registry) -> LiveVersions:
    """The spec's default, canary, shadow and pinned versions resolved against the registry
    now. A shadow that resolves to the default version is dropped: after the shadow is
    promoted (its alias or number now names the default) there is nothing to compare."""
    default = registry.resolve(spec.model, spec.version)
    canary = None
    if spec.canary is not None:
        canary = CanaryTarget(
            version=registry.resolve(spec.model, spec.canary.version), weight=spec.canary.weight
        )
    shadow = None
    if spec.shadow is not None:
        shadow = ShadowTarget(
            version=registry.resolve(spec.model, spec.shadow.version), share=spec.shadow.share
        )
        shadow = None if shadow.version == default else shadow
    pinned = tuple(sorted({registry.resolve(spec.model, ref) for ref in spec.also_serve}))
    served = {default, *pinned} | ({canary.version} if canary else set())
    aliases = served_aliases(registry, spec.model, served)
    return LiveVersions(
        default=default, canary=canary, shadow=shadow, pinned=pinned, aliases=aliases
    )


def served_aliases(registry: Registry, model: str, served: set[int]) -> dict[str, int]:
    """The registry's aliases of ``model`` that name a version answering requests."""
    return {a: v for a, v in registry.aliases(model).items() if v in served}


def verified_live_versions(spec: DeploymentSpec, registry: Registry) -> LiveVersions:
    """The versions a deployment would serve, each checked against its sha256 first:
    a corrupt version fails here and the live deployment keeps what it serves."""
    live = live_versions(spec, registry)
    for version in sorted(live.loaded()):
        registry.verify(spec.model, version)
    return live
