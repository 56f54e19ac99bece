"""The limit a served model is compared with: a minimal Starlette app that parses a v2 JSON
request, runs the forward pass and writes a v2 JSON answer, and nothing else (no Tandem
request code: no auth, routing, limits, metrics or error mapping).

    TANDEM_HOME=... TANDEM_PLAIN_MODEL=digits python -m uvicorn --factory \
        _minimal_server:app_from_env --app-dir benchmarks --port PORT

The model is the registry's (the same weights, preprocessing and label mapping as a
replica's, through ``ModelRunner.forward``).
"""

from __future__ import annotations

import json
import os

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tandem.models import load_runner, size_torch_threads
from tandem.registry.store import Registry
from tandem.settings import Settings


def app_from_env() -> Starlette:
    size_torch_threads()
    name = os.environ["TANDEM_PLAIN_MODEL"]
    registry = Registry.default(Settings.from_env())
    runner = load_runner(registry, name, registry.resolve(name, "latest"))

    async def infer(request: Request) -> Response:
        tensor = json.loads(await request.body())["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        outputs = runner.predict([rows])  # preprocessing, forward pass, label mapping
        answer = {
            "model_name": name,
            "outputs": [
                {
                    "name": key,
                    "shape": list(value.shape),
                    "datatype": "FP32" if value.dtype.kind == "f" else "INT64",
                    "data": value.reshape(-1).tolist(),
                }
                for key, value in outputs.items()
            ],
        }
        return Response(json.dumps(answer), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response("{}", media_type="application/json")

    return Starlette(
        routes=[
            Route(f"/v2/models/{name}/infer", infer, methods=["POST"]),
            Route(f"/v2/models/{name}", ready),
        ]
    )
