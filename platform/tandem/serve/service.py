"""The request path of one model, top to bottom: auth → route → read → parse → prepare →
batch → respond (→ mirror to the shadow, in the background).

Plain asyncio + Starlette, no Ray: the Serve replica (``tandem.serve.app``) wraps it
with ``@serve.batch`` and metrics, and the benchmark's plain uvicorn process runs it
as is, so both measure the same per-request work.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

import tandem.serve.binary as binary
import tandem.serve.protocol as protocol
import tandem.serve.statuses as statuses
from tandem.errors import (
    InputError,
    MalformedRequest,
    ModelFailed,
    NotServed,
    Rejected,
    TooLarge,
)
from tandem.models import ModelRunner, Outputs
from tandem.preprocess import Raw
from tandem.serve.auth import BearerAuth
from tandem.serve.routing import LiveVersions
from tandem.serve.shadow import Mirrored, ShadowQueue, ShadowSink

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

Predict = Callable[[ModelRunner, list[np.ndarray]], Awaitable[Outputs]]
"""``(runner, arrays) -> outputs`` for one request's prepared arrays (one per input): the
batcher in a replica, a direct ``runner.forward`` elsewhere."""
logger = logging.getLogger(__name__)


class Action(Enum):
    METADATA = "metadata"
    READY = "ready"
    INFER = "infer"


@dataclass(frozen=True)
class Route:
    action: Action
    version: str | None


def parse_route(method: str, path: str) -> Route:
    """Map a path relative to ``/v2/models/{name}`` onto an action (and pinned version)."""
    parts = [p for p in path.split("/") if p]
    version = None
    if len(parts) >= 2 and parts[0] == "versions":
        version, parts = parts[1], parts[2:]
    wanted = {(): ("GET", Action.METADATA), ("ready",): ("GET", Action.READY)}
    wanted[("infer",)] = ("POST", Action.INFER)
    match = wanted.get(tuple(parts))
    if match is None or match[0] != method:
        raise NotServed(
            f"no endpoint {method} {path or '/'}; use GET '', GET /ready or POST /infer "
            "(optionally under /versions/{v})"
        )
    return Route(match[1], version)


def relative_path(scope: MutableMapping[str, Any]) -> str:
    """The path below the app's route prefix (Serve puts the prefix in ``root_path``)."""
    path = str(scope["path"])
    root = str(scope.get("root_path") or "")
    return path[len(root) :] if root and path.startswith(root) else path


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (``TooLarge``) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = TooLarge(f"request body exceeds this deployment's limit of {limit} bytes")
    # Only an early way out, so skip what int() refuses: "²" (isdigit() is true for it) and
    # absurdly long numbers; the loop below counts the bytes that really arrive anyway.
    if declared.isascii() and declared.isdigit() and len(declared) <= 20 and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def infer_response(answer: protocol.InferResponse) -> Response:
    """JSON, or (with binary outputs) the JSON header then the outputs' bytes."""
    if answer.json_length is None:
        return json_response(statuses.OK, answer.body)
    headers = {binary.HEADER_LENGTH: str(answer.json_length)}
    return Response(answer.body, status_code=statuses.OK, media_type=OCTET_STREAM, headers=headers)


def prepare(runner: ModelRunner, raws: list[Raw]) -> list[np.ndarray]:
    """The model arrays of one request, before it joins a batch, so a bad value fails only
    its own request: ``InputError`` (an undecodable image, a token id outside the
    vocabulary) becomes a ``MalformedRequest`` naming the input."""
    try:
        return runner.prepare(raws)
    except InputError as error:
        raise MalformedRequest(str(error)) from None


@dataclass
class Outcome:
    """What the caller records in metrics and evidence for one request."""

    status: int
    version: int | None
    """The version that answered; ``None`` when the request failed before one was chosen."""
    inference: bool = False
    """An infer request (what rollout evidence counts; metadata and ready checks are not)."""


class ModelService:
    """Answers every ``/v2/models/{name}/...`` request for the loaded versions."""

    def __init__(
        self,
        model: str,
        auth: BearerAuth,
        max_rows: int,
        max_body_bytes: int,
        on_shadow: ShadowSink | None = None,
        shadow_batch: int = 32,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.model = model
        self._auth = auth
        self._max_rows = max_rows
        self._max_body_bytes = max_body_bytes
        self._draw = draw
        """Uniform in [0, 1): the canary's and the shadow's coins."""
        self._state: tuple[LiveVersions, dict[int, ModelRunner]] | None = None
        self.shadows = ShadowQueue(on_shadow or (lambda result: None), shadow_batch)
        """Mirrored requests; ``shadow_batch`` requests at most per pass, as many as the
        live path's batches, so the shadow's latency is comparable with theirs."""

    @property
    def runners(self) -> dict[int, ModelRunner]:
        return {} if self._state is None else self._state[1]

    def swap(self, live: LiveVersions, runners: dict[int, ModelRunner]) -> None:
        """Switch to new versions with one assignment, so a request sees old or new, never
        a mix; requests already holding an old runner finish on it."""
        assert set(runners) == set(live.loaded())
        self._state = (live, runners)

    async def handle(self, request: Request, predict: Predict) -> tuple[Response, Outcome]:
        try:
            return await self._handle(request, predict)
        except Rejected as error:
            return error_response(error), Outcome(statuses.status_of(error), None)

    async def _handle(self, request: Request, predict: Predict) -> tuple[Response, Outcome]:
        self._auth.check(request.headers.get("authorization"))
        route = parse_route(request.method, relative_path(request.scope))
        assert self._state is not None, "the replica is not reconfigured with its versions yet"
        live, runners = self._state
        if route.action is Action.INFER:
            return await self._infer(request, route.version, live, runners, predict)
        version = live.default if route.version is None else live.resolve(route.version)
        if route.action is Action.READY:
            # Serve routes traffic here only once __init__ (with its warm-up pass) returned.
            ready = {"name": self.model, "version": str(version), "ready": True}
            return json_response(statuses.OK, json.dumps(ready).encode()), Outcome(
                statuses.OK, version
            )
        versions = sorted(live.served())
        metadata = protocol.model_metadata(runners[version].manifest, versions)
        return json_response(statuses.OK, json.dumps(metadata).encode()), Outcome(
            statuses.OK, version
        )

    async def _infer(
        self,
        request: Request,
        ref: str | None,
        live: LiveVersions,
        runners: dict[int, ModelRunner],
        predict: Predict,
    ) -> tuple[Response, Outcome]:
        body = await read_body(request, self._max_body_bytes)
        runner = runners[live.pick(ref, self._draw())]
        try:
            parsed = protocol.parse_infer_request(
                body, runner.manifest, self._max_rows, request.headers.get(binary.HEADER_LENGTH)
            )
            arrays = prepare(runner, parsed.raws)
            outputs = await self._forward(runner, arrays, predict)
            answer = protocol.infer_response(runner.manifest, parsed, outputs)
        except Rejected as error:
            # Attributed to the version, so a rollout sees which version failed.
            outcome = Outcome(statuses.status_of(error), runner.version, inference=True)
            return error_response(error), outcome
        # The response is already built from the live outputs: the shadow cannot change it.
        shadow = live.mirrors(ref, runner.version, self._draw()) if live.shadow else None
        if shadow is not None:
            mirrored = Mirrored(runner, runners[shadow.version], parsed.raws, arrays, outputs)
            self.shadows.put(mirrored)
        return infer_response(answer), Outcome(statuses.OK, runner.version, inference=True)

    async def _forward(
        self, runner: ModelRunner, arrays: list[np.ndarray], predict: Predict
    ) -> Outputs:
        """The live outputs; a model that raises fails its own version (logged with its
        traceback), not of whichever request happened to share its batch."""
        try:
            return await predict(runner, arrays)
        except Exception:
            logger.exception("%s v%d failed on a batch", self.model, runner.version)
            raise ModelFailed(
                f"version {runner.version} of {self.model} failed on this request; the "
                "replica's log has the traceback"
            ) from None


def error_response(error: Rejected) -> Response:
    """The answer to a refused request: its status from ``statuses``, its message as JSON."""
    return json_response(statuses.status_of(error), protocol.error_body(error.message))
