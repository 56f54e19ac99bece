"""KServe's Python model server serving one TorchScript file from ``_kserve_peer.export_model``.

Runs under the kserve venv's python (no Tandem there), started by
``_kserve_peer.kserve_server``:

    .venv-kserve/bin/python benchmarks/_kserve_model_server.py --model_file digits.pt \
        --model_name digits --http_port PORT

Open Inference Protocol v2 over HTTP, one worker, loopback only, no gRPC. Takes one FP32
input ``[N, F]`` (raw rows) and answers ``probabilities`` (FP32) and ``label`` (INT64).
"""

from __future__ import annotations

import argparse
import logging
import os

import kserve
import torch
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse
from kserve.utils.utils import generate_uuid


class LoopbackConfig(uvicorn.Config):
    """kserve 0.21 binds its HTTP server to 0.0.0.0 with no option to change it; a benchmark
    server must listen on loopback only."""

    def __init__(self, app: object, **kwargs: object) -> None:
        super().__init__(app, **{**kwargs, "host": "127.0.0.1"})  # type: ignore[arg-type]


class TorchScriptModel(kserve.Model):
    def __init__(self, name: str, model_file: str) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.module: torch.jit.ScriptModule | None = None

    def load(self) -> bool:
        # Same sizing as a Tandem replica (size_torch_threads): the cores it is pinned to.
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.module = torch.jit.load(self.model_file).eval()
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        assert self.module is not None, "predict before load"
        rows = torch.from_numpy(payload.inputs[0].as_numpy())
        with torch.inference_mode():
            probabilities, label = self.module(rows)
        outputs = []
        for name, datatype, value in [
            ("probabilities", "FP32", probabilities),
            ("label", "INT64", label),
        ]:
            output = InferOutput(name=name, shape=list(value.shape), datatype=datatype)
            output.set_data_from_numpy(value.numpy(), binary_data=False)  # JSON, like the others
            outputs.append(output)
        return InferResponse(
            response_id=generate_uuid(), model_name=self.name, infer_outputs=outputs
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    uvicorn.Config = LoopbackConfig  # type: ignore[misc,assignment]  # read by kserve's RESTServer
    model = TorchScriptModel(args.model_name, args.model_file)
    model.load()
    server = kserve.ModelServer(
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
    )
    # No per-request log lines, as the plain process runs with --no-access-log: uvicorn's
    # access log and the two timing lines kserve's TimingMiddleware writes per request.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).disabled = True
    server.start([model])


if __name__ == "__main__":
    main()
