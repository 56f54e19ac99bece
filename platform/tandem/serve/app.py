"""The Ray Serve application of one model, and the gateway for server-wide endpoints.

``tandem.serve.app:build`` is an app builder for Serve config files: ``args`` is a
``DeploymentSpec``. Each model app is one deployment whose replicas hold every live
version, batch requests with a ``MicroBatcher`` and answer HTTP themselves; no
handle hop sits between the HTTP server and the model, which keeps the request
path as short as a plain process. ``tandem.serve.app:build_gateway`` answers
``/v2`` (server metadata), ``/v2/health/*`` and 404s for unknown models.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve import Application
from ray.serve.schema import ApplicationStatus
from starlette.requests import Request
from starlette.responses import Response

import tandem.serve.protocol as protocol
import tandem.serve.statuses as statuses
from tandem.cluster import pool_resources
from tandem.errors import NotServed, Rejected
from tandem.models import ModelRunner, device_here, load_runner, size_torch_threads
from tandem.serve.adaptive import batching_policy
from tandem.serve.auth import BearerAuth, load_token
from tandem.serve.batcher import BatchReport, MicroBatcher
from tandem.serve.batching import run_grouped
from tandem.serve.evidence import EvidenceAccumulator, ShadowResult
from tandem.serve.evidence_book import flush_periodically
from tandem.serve.metrics import RequestMetrics
from tandem.serve.resolve import live_versions, open_registry
from tandem.serve.routing import LiveVersions
from tandem.serve.service import ModelService, Outputs, error_response, json_response
from tandem.settings import Settings
from tandem.specs import AuthSpec, DeploymentSpec, Pool, parse

MODEL_DEPLOYMENT = "ModelServer"
GATEWAY_APP = "tandem-gateway"
GATEWAY_DEPLOYMENT = "Gateway"
GATEWAY_ROUTE = "/"
RETRY_AFTER_S = 1.0
HEALTH_CHECK_PERIOD_S = 5.0
BatchItem = tuple[ModelRunner, list[np.ndarray]]
"""One request in a batch: its runner (version) and its prepared arrays (one per input)."""
# Serve writes this logger to the replica's log file (logs/serve/replica_*.log).
logger = logging.getLogger("ray.serve")


def route_prefix(model: str) -> str:
    return f"/v2/models/{model}"


def deployment_options(spec: DeploymentSpec, live: LiveVersions) -> dict[str, Any]:
    """Serve options of a model's deployment; ``user_config`` carries the live versions."""
    scaling = spec.autoscaling
    return {
        "max_ongoing_requests": spec.max_ongoing_requests,
        "max_queued_requests": spec.max_queued_requests,
        # Overload answers 503 + Retry-After instead of queueing without bound.
        "backpressure_config": {
            "status_code": statuses.UNAVAILABLE,
            "retry_after_s": RETRY_AFTER_S,
        },
        "autoscaling_config": {
            "min_replicas": scaling.min_replicas,
            "initial_replicas": max(scaling.min_replicas, 1),
            "max_replicas": scaling.max_replicas,
            "target_ongoing_requests": scaling.target_ongoing_requests,
            "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
        },
        "ray_actor_options": {
            "num_cpus": spec.cpus_per_replica,
            "num_gpus": spec.gpus_per_replica,
            "resources": pool_resources(Pool.SERVE),
        },
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        # Requests take milliseconds: a replica being replaced drains fast.
        "graceful_shutdown_wait_loop_s": 0.5,
        "graceful_shutdown_timeout_s": 10.0,
        "user_config": live.model_dump(mode="json"),
    }


@serve.deployment(name=MODEL_DEPLOYMENT)
class ModelServer:
    """One replica: every live version of one model, loaded and warmed up."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = DeploymentSpec.model_validate(spec)
        size_torch_threads()
        # With gpus_per_replica > 0, Ray set CUDA_VISIBLE_DEVICES to this replica's GPU.
        self._device = device_here(self._spec.gpus_per_replica, f"a replica of {self._spec.model}")
        self._registry = open_registry(self._spec, Settings.from_env())
        token = load_token(self._spec.auth) if self._spec.auth is not None else None
        self._service = ModelService(
            self._spec.model,
            BearerAuth(token),
            self._spec.max_request_rows,
            self._spec.max_body_bytes,
            on_shadow=self._shadow_done,
            shadow_batch=self._spec.batching.max_batch_size,
        )
        self._metrics = RequestMetrics(self._spec.model)
        self._evidence = EvidenceAccumulator()
        # Started by the first request, on the event loop that serves requests.
        self._flusher: asyncio.Task[None] | None = None
        self._policy = batching_policy(self._spec.batching)
        self._batcher: MicroBatcher[BatchItem, Outputs] = MicroBatcher(
            run_grouped, self._policy, self._batch_done
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load versions not yet loaded (sha256-checked, warmed up), then swap atomically."""
        live = LiveVersions.model_validate(user_config)
        loaded = self._service.runners
        runners = {v: loaded.get(v) or self._load(v) for v in live.loaded()}
        self._service.swap(live, runners)

    def _load(self, version: int) -> ModelRunner:
        runner = load_runner(
            self._registry, self._spec.model, version, self._device, self._spec.precision
        )
        logger.info("tandem runner loaded: %s", runner.describe())
        return runner

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        response, outcome = await self._service.handle(request, self._predict)
        elapsed_s = time.perf_counter() - started
        self._metrics.request(outcome.version, outcome.status, elapsed_s)
        if outcome.inference and outcome.version is not None:
            self._evidence.request(outcome.version, outcome.status, elapsed_s * 1000)
        if self._flusher is None:
            self._flusher = flush_periodically(self._spec.model, self._evidence)
        return response

    def _shadow_done(self, result: ShadowResult) -> None:
        self._metrics.shadow(result)
        self._evidence.shadow(result)

    async def _predict(self, runner: ModelRunner, arrays: list[np.ndarray]) -> Outputs:
        return await self._batcher.submit((runner, arrays))

    def _batch_done(self, report: BatchReport[BatchItem]) -> None:
        waits: dict[int, list[float]] = {}
        for (runner, _), wait in zip(report.items, report.waits_s, strict=True):
            waits.setdefault(runner.version, []).append(wait)
        for version, version_waits in waits.items():
            self._metrics.batch(version, len(version_waits), version_waits)
        self._policy.observe(report)

    def check_health(self) -> None:
        for runner in self._service.runners.values():
            runner.check()


def build(args: dict[str, Any]) -> Application:
    """App builder for Serve config files (``import_path: tandem.serve.app:build``)."""
    spec = parse(DeploymentSpec, args, "applications[].args")
    live = live_versions(spec, open_registry(spec, Settings.from_env()))
    options = deployment_options(spec, live)
    deployment: Any = ModelServer  # @serve.deployment returns a Deployment, untyped
    return deployment.options(**options).bind(spec.model_dump(mode="json"))


class GatewaySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: AuthSpec | None = None
    """Auth for ``/v2``, ``/v2/health/ready`` and the 404 answers (``/v2/health/live`` stays
    open)."""


@serve.deployment(
    name=GATEWAY_DEPLOYMENT,
    num_replicas=1,
    ray_actor_options={"num_cpus": 0, "resources": pool_resources(Pool.SERVE)},
)
class Gateway:
    """Server-wide endpoints; every path no model app claims ends here."""

    def __init__(self, spec: dict[str, Any]) -> None:
        parsed = GatewaySpec.model_validate(spec)
        token = load_token(parsed.auth) if parsed.auth is not None else None
        self._auth = BearerAuth(token)

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        try:
            if path == "/v2/health/live":
                return json_response(statuses.OK, b'{"live": true}')
            self._auth.check(request.headers.get("authorization"))
            if path == "/v2" and request.method == "GET":
                metadata = json.dumps(protocol.server_metadata()).encode()
                return json_response(statuses.OK, metadata)
            models = model_app_statuses()
            if path == "/v2/health/ready":
                ready = all(status == ApplicationStatus.RUNNING for status in models.values())
                status = statuses.OK if ready else statuses.UNAVAILABLE
                return json_response(status, json.dumps({"ready": ready}).encode())
            raise NotServed(
                f"no model serves {request.url.path}; deployed models: {sorted(models)} "
                "(use /v2/models/{name}/...)"
            )
        except Rejected as error:
            return error_response(error)


def model_app_statuses() -> dict[str, ApplicationStatus]:
    """Status of every model app (the gateway and apps being deleted excluded), by model name."""
    apps = serve.status().applications
    return {
        name: app.status
        for name, app in apps.items()
        if name != GATEWAY_APP and app.status != ApplicationStatus.DELETING
    }


def build_gateway(args: dict[str, Any]) -> Application:
    """App builder for the gateway (``import_path: tandem.serve.app:build_gateway``)."""
    deployment: Any = Gateway  # @serve.deployment returns a Deployment, untyped
    return deployment.bind(GatewaySpec.model_validate(args or {}).model_dump(mode="json"))
