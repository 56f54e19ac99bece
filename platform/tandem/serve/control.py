"""Deploy, undeploy, promote, roll back and shift traffic (canary, shadow): the only module
that changes Serve's state.

Tandem deploys declaratively, the way ``serve deploy`` does: one config with
every Tandem app, applied through the Serve controller. Each model app's
versions travel as its deployment's ``user_config``, so moving an alias, a
canary or a shadow is a config change that Serve applies to running replicas in place
(new weights load and warm up before the swap): no replica restarts, no request
fails. Changing anything else in a spec is a rolling update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from ray import serve
from ray.serve.schema import ApplicationStatus, DeploymentStatus, ServeDeploySchema

import tandem.serve.evidence_book as evidence_book
from tandem.cluster import ClusterState, connect, require_pool_gpus, require_shared
from tandem.errors import ClusterError, NotFoundError, RegistryError
from tandem.evaluation import evaluate, find
from tandem.ray_private import deploy_apps, serve_details, serve_http_options
from tandem.registry import Registry
from tandem.serve.app import GATEWAY_APP, MODEL_DEPLOYMENT, route_prefix
from tandem.serve.evidence import RolloutEvidence
from tandem.serve.promotion import check_metric, gate
from tandem.serve.resolve import (
    live_versions,
    open_registry,
    served_aliases,
    verified_live_versions,
)
from tandem.serve.routing import CanaryTarget, LiveVersions, ShadowTarget
from tandem.settings import Settings
from tandem.specs import (
    MODEL_APP_IMPORT_PATH,
    CanarySpec,
    DeploymentSpec,
    Pool,
    ShadowSpec,
    load,
)

GATEWAY_IMPORT_PATH = "tandem.serve.app:build_gateway"
DEPLOY_TIMEOUT_S = 180.0
POLL_S = 0.25


@dataclass(frozen=True)
class Deployed:
    spec: DeploymentSpec
    live: LiveVersions
    status: str


def http_port(settings: Settings) -> int:
    """Serve's HTTP port, one rule for every cluster: ``TANDEM_PORT_BASE + 3`` (24003 by
    default), as the embedded cluster recorded it when it started."""
    state = ClusterState.read(settings) if settings.embedded else None
    return state.serve_http_port if state is not None else settings.serve_http_port


def endpoint(settings: Settings) -> str:
    """Base URL of the HTTP (Open Inference Protocol v2) endpoint: the cluster's host
    (127.0.0.1 for the embedded one) and Serve's port."""
    return f"http://{settings.cluster_host}:{http_port(settings)}"


def model_app_config(spec: DeploymentSpec, live: LiveVersions) -> dict[str, Any]:
    """One model's entry under ``applications:`` (what ``serve deploy`` would read).

    The canary and the shadow travel only in ``user_config`` (as ``live.canary`` and
    ``live.shadow``): Serve treats a change of ``args`` as new code and replaces replicas,
    but applies a ``user_config`` change in place, so shifting either is as safe as a
    promote.
    """
    return {
        "name": spec.model,
        "route_prefix": route_prefix(spec.model),
        "import_path": MODEL_APP_IMPORT_PATH,
        "args": spec.model_dump(mode="json", exclude_unset=True, exclude={"canary", "shadow"}),
        # A log line per request costs more CPU than a small model's forward pass;
        # the request metrics count every answer by status instead.
        "logging_config": {"enable_access_log": False},
        "deployments": [{"name": MODEL_DEPLOYMENT, "user_config": live.model_dump(mode="json")}],
    }


def is_model_app(config: dict[str, Any]) -> bool:
    """A Tandem model app (``tandem deploy`` or ``serve deploy`` of a file from
    ``deployments/``), not the gateway and not an app Tandem knows nothing about."""
    return config.get("import_path") == MODEL_APP_IMPORT_PATH


def deployed_spec(config: dict[str, Any]) -> tuple[DeploymentSpec, LiveVersions | None]:
    """The spec and live versions of a deployed model app (inverse of ``model_app_config``).
    Live versions are ``None`` for an app ``serve deploy`` started from a file: its
    replicas resolved the spec's aliases when it was built, and Tandem has not moved them."""
    deployments = config.get("deployments") or [{}]
    user_config = deployments[0].get("user_config")
    spec = DeploymentSpec.model_validate(config["args"])
    if user_config is None:
        return spec, None
    live = LiveVersions.model_validate(user_config)
    if live.canary is not None:
        spec.canary = CanarySpec(version=live.canary.version, weight=live.canary.weight)
    if live.shadow is not None:
        spec.shadow = ShadowSpec(version=live.shadow.version, share=live.shadow.share)
    return spec, live


def _current(config: dict[str, Any], settings: Settings) -> tuple[DeploymentSpec, LiveVersions]:
    """A deployed model app's spec and the versions its replicas serve (for an app from
    ``serve deploy``: its spec resolved against the registry, as its builder did)."""
    spec, live = deployed_spec(config)
    if live is None:
        live = live_versions(spec, open_registry(spec, settings))
    return spec, live


def gateway_app_config(specs: list[DeploymentSpec]) -> dict[str, Any]:
    auth = next((s.auth for s in specs if s.auth is not None), None)
    args = {} if auth is None else {"auth": auth.model_dump(mode="json", exclude_none=True)}
    return {
        "name": GATEWAY_APP,
        "route_prefix": "/",
        "import_path": GATEWAY_IMPORT_PATH,
        "args": args,
    }


def _connect(settings: Settings) -> None:
    connect(settings)
    # One proxy, on the head: every embedded node shares 127.0.0.1, so proxies on several
    # nodes would fight over the same port. Loopback unless TANDEM_SERVE_HOST opens it.
    serve.start(
        proxy_location="HeadOnly",
        http_options={"host": settings.serve_host, "port": http_port(settings)},
    )


def _deployed_configs() -> dict[str, dict[str, Any]]:
    """Every app's deployed config, by app name (the gateway's left out)."""
    details = serve_details()
    return {
        name: app["deployed_app_config"]
        for name, app in details.get("applications", {}).items()
        if app.get("deployed_app_config") and name != GATEWAY_APP
    }


def _model_configs() -> dict[str, dict[str, Any]]:
    return {name: c for name, c in _deployed_configs().items() if is_model_app(c)}


def _apply(settings: Settings, models: dict[str, dict[str, Any]], wait_for: list[str]) -> None:
    """Deploy ``models`` as every Tandem model app, beside the gateway and every app Tandem
    did not create (kept as they are: Serve deletes the apps a config leaves out)."""
    others = [c for c in _deployed_configs().values() if not is_model_app(c)]
    specs = [deployed_spec(c)[0] for c in models.values()]
    # The running Serve's own HTTP options: a driver that cannot tell which port the
    # cluster was started with (a Ray job's driver sees only RAY_ADDRESS) keeps them.
    http = serve_http_options()
    config = ServeDeploySchema.model_validate(
        {
            "proxy_location": "HeadOnly",
            "http_options": {"host": http.host, "port": http.port},
            "applications": [*others, *models.values(), gateway_app_config(specs)],
        }
    )
    deploy_apps(config)
    _wait_running([*wait_for, GATEWAY_APP])


def _wait_running(names: list[str]) -> None:
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    statuses: dict[str, Any] = {}
    while time.monotonic() < deadline:
        apps = serve.status().applications
        statuses = {n: apps[n] for n in names if n in apps}
        failed = {
            n: a.message for n, a in statuses.items() if a.status == ApplicationStatus.DEPLOY_FAILED
        }
        if failed:
            raise ClusterError(f"deployment failed: {failed}")
        if len(statuses) == len(names) and all(
            a.status == ApplicationStatus.RUNNING for a in statuses.values()
        ):
            updating = [
                n
                for n, a in statuses.items()
                if any(d.status != DeploymentStatus.HEALTHY for d in a.deployments.values())
            ]
            if not updating:
                return
        time.sleep(POLL_S)
    summary = {n: (str(a.status), a.message) for n, a in statuses.items()}
    raise ClusterError(f"applications not running after {DEPLOY_TIMEOUT_S:.0f}s: {summary}")


def deploy(spec: DeploymentSpec | str | dict[str, Any], settings: Settings) -> Deployed:
    """Deploy (or update) one model's app; returns once its replicas serve the versions."""
    parsed = load(DeploymentSpec, spec)
    # Replicas open the registry this process checks, wherever they run.
    parsed = parsed.model_copy(update={"storage": settings.storage_for(parsed.storage)})
    assert parsed.storage is not None
    require_shared(settings, parsed.storage)
    live = verified_live_versions(parsed, open_registry(parsed, settings))
    _connect(settings)
    if parsed.gpus_per_replica > 0 and settings.embedded:
        require_pool_gpus(Pool.SERVE, parsed.gpus_per_replica, "gpus_per_replica")
    models = _model_configs()
    models[parsed.model] = model_app_config(parsed, live)
    _apply(settings, models, [parsed.model])
    return Deployed(parsed, live, ApplicationStatus.RUNNING.value)


def undeploy(name: str, settings: Settings) -> None:
    _connect(settings)
    models = _model_configs()
    if name not in models:
        raise NotFoundError(f"no deployment named {name!r}; deployed: {sorted(models)}")
    del models[name]
    _apply(settings, models, [])
    _wait_gone(name, settings)
    # Only now: a replica still running would recreate the book with its next flush.
    evidence_book.delete_book(name)


def _wait_gone(name: str, settings: Settings) -> None:
    """Until the app is deleted and HTTP no longer reaches it: HAProxy drops a route
    only after Serve has stopped the app's replicas and broadcast the change."""
    ready = f"{endpoint(settings)}{route_prefix(name)}/ready"
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while time.monotonic() < deadline:
        if name not in serve.status().applications:
            try:
                if httpx.get(ready, timeout=5).status_code != 200:
                    return
            except httpx.HTTPError:
                return
        time.sleep(POLL_S)
    raise ClusterError(f"{name!r} still answers {DEPLOY_TIMEOUT_S:.0f}s after undeploy")


def deployments(settings: Settings) -> list[Deployed]:
    _connect(settings)
    apps = serve.status().applications
    found = []
    for name, config in sorted(_model_configs().items()):
        spec, live = _current(config, settings)
        found.append(Deployed(spec, live, apps[name].status.value))
    return found


def set_traffic(
    name: str,
    settings: Settings,
    canary: CanaryTarget | None,
    shadow: ShadowTarget | None,
) -> Deployed:
    """Give the deployed model ``name`` this canary and shadow (``None`` removes one); its
    default and pinned versions stay. Versions new to the replicas are sha256-checked
    first, and the change is applied in place; returns once every replica runs it.
    ``NotFoundError`` when ``name`` is not deployed, ``ValueError`` for a shadow that is
    the default version."""
    _connect(settings)
    models = _model_configs()
    if name not in models:
        raise NotFoundError(f"no deployment named {name!r}; deployed: {sorted(models)}")
    spec, live = _current(models[name], settings)
    if shadow is not None and shadow.version == live.default:
        raise ValueError(
            f"shadow version {shadow.version} is {name}'s default version; shadow another "
            "version, or pass shadow=None"
        )
    registry = open_registry(spec, settings)
    served = {live.default, *live.pinned} | ({canary.version} if canary else set())
    new = LiveVersions(
        default=live.default,
        canary=canary,
        shadow=shadow,
        pinned=live.pinned,
        aliases=served_aliases(registry, name, served),
    )
    # Like _follow_aliases: a corrupt version fails here, and the replicas keep theirs.
    for version in sorted(new.loaded()):
        registry.verify(name, version)
    models[name] = model_app_config(spec, new)
    _apply(settings, models, [name])
    spec, _ = deployed_spec(models[name])  # the spec now names the new canary and shadow
    return Deployed(spec, new, ApplicationStatus.RUNNING.value)


def rollout_evidence(name: str, settings: Settings, since: float) -> RolloutEvidence:
    """What ``name``'s replicas recorded since ``since`` (``time.time()``): per version and
    per shadow (see ``evidence_book.rollout_evidence``)."""
    connect(settings)
    return evidence_book.rollout_evidence(name, since)


def _follow_aliases(model: str, settings: Settings) -> None:
    """Re-resolve a deployed model's versions after an alias moved (no-op if not deployed)."""
    _connect(settings)
    models = _model_configs()
    if model not in models:
        return
    spec, _ = deployed_spec(models[model])
    live = verified_live_versions(spec, open_registry(spec, settings))
    models[model] = model_app_config(spec, live)
    _apply(settings, models, [model])


def promote(
    name: str,
    version: int,
    settings: Settings,
    alias: str = "production",
    if_better: str | None = None,
    min_gain: float = 0.0,
    say: Callable[[str], None] | None = None,
) -> int | None:
    """Point ``alias`` at ``version``; returns the previous holder.

    ``if_better``: a metric (``accuracy``, ``loss``, ``rmse``, ``mae``, or training's
    ``val_`` names for them) on which the version must beat the alias's current holder by
    at least ``min_gain``, both scored on the same data: the newest stored evaluation of
    the two, else one run now on the candidate's validation set. A tie or a loss refuses
    with ``RegistryError``. ``say`` (default: this module's logger) hears the gate's
    reason and whether an evaluation had to run first.
    """
    tell = say or logging.getLogger(__name__).info
    registry = Registry.default(settings)
    # A corrupt candidate is refused here, before the alias (and the deployment) moves.
    candidate = registry.verify(name, version)
    current = registry.aliases(name).get(alias)
    if if_better is not None:
        check_metric(if_better, candidate.task)
        evaluation = None
        if current is not None and current != candidate.version:
            evaluation = find(registry, name, candidate.version, current)
            if evaluation is None:
                tell(
                    f"no stored evaluation of {name} v{candidate.version} against v{current} "
                    f"({alias}): scoring both on v{candidate.version}'s validation data first"
                )
                evaluation = evaluate(settings, name, candidate.version, against=alias)
        decision = gate(if_better, evaluation, candidate.version, current, min_gain)
        if not decision.passed:
            raise RegistryError(
                f"refusing to promote {name} v{candidate.version} to {alias!r}: {decision.reason}"
            )
        tell(f"{alias} may move to v{candidate.version}: {decision.reason}")
    previous = registry.set_alias(name, alias, candidate.version)
    _follow_aliases(name, settings)
    return previous


def rollback(name: str, settings: Settings, alias: str = "production") -> tuple[int, int]:
    """Return ``alias`` to its previous version; returns (from, to)."""
    moved = Registry.default(settings).rollback_alias(name, alias)
    _follow_aliases(name, settings)
    return moved
