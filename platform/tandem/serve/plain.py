"""The same model service in one plain ASGI process, without Ray: the benchmark's baseline.

``python -m uvicorn --factory tandem.serve.plain:from_env`` serves one registry
version at ``/v2/models/{name}/...`` exactly as a replica does, minus Serve
(no batching, no autoscaling, no admission control), and the server metadata at ``/v2``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

import tandem.serve.protocol as protocol
import tandem.serve.statuses as statuses
from tandem.errors import NotServed
from tandem.models import ModelRunner, load_runner, size_torch_threads
from tandem.registry import Registry
from tandem.serve.auth import BearerAuth
from tandem.serve.routing import LiveVersions
from tandem.serve.service import ModelService, Outputs, error_response, json_response
from tandem.settings import Settings


def plain_app(runner: ModelRunner, max_rows: int = 4096, max_body_bytes: int = 8 << 20) -> ASGIApp:
    name = runner.manifest.name
    service = ModelService(name, BearerAuth(None), max_rows, max_body_bytes)
    service.swap(LiveVersions(default=runner.version), {runner.version: runner})

    async def predict(runner: ModelRunner, arrays: list[np.ndarray]) -> Outputs:
        return runner.forward(arrays)

    prefix = f"/v2/models/{name}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        path = scope["path"]
        if path.rstrip("/") == "/v2" and scope["method"] == "GET":
            metadata = json.dumps(protocol.server_metadata()).encode()
            await json_response(statuses.OK, metadata)(scope, receive, send)
            return
        if path != prefix and not path.startswith(prefix + "/"):
            missing = NotServed(f"no model serves {path}; this server has {name!r}")
            await error_response(missing)(scope, receive, send)
            return
        # The same scope Serve hands a replica: the app's prefix in root_path.
        request = Request({**scope, "root_path": prefix}, receive)
        response, _ = await service.handle(request, predict)
        await response(scope, receive, send)

    return app


def from_env() -> ASGIApp:
    """Factory for uvicorn: ``TANDEM_PLAIN_MODEL`` / ``TANDEM_PLAIN_VERSION`` from the registry."""
    size_torch_threads()
    registry = Registry.default(Settings.from_env())
    name = os.environ["TANDEM_PLAIN_MODEL"]
    version = registry.resolve(name, os.environ.get("TANDEM_PLAIN_VERSION", "latest"))
    return plain_app(load_runner(registry, name, version))
