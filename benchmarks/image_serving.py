"""Binary vs. JSON requests to an image model served by Tandem (the v2 binary tensor extension).

    .venv/bin/python benchmarks/image_serving.py --rows 8 --runs 3 --seconds 10 [--out f.json]

On a private embedded cluster (started and stopped here), the same untrained
``tandem.models:image_cnn`` (``--channels``, default [16, 32] as in
jobs/specs/digits-image.yaml) is registered twice, once per input kind, and each is
deployed as one replica (``cpus_per_replica: 1``, serve pool, batching 16 / 1 ms):

- ``tensor``: input ``pixels``, UINT8 ``[N, 3, 32, 32]``;
- ``image``: input ``image``, BYTES ``[N]`` of PNGs (decoded in the replica).

Each kind is loaded with the same ``--rows`` synthetic images per request, sent two ways:

- ``json``: what Tandem's SDK sends (``tandem.sdk.inference.infer_body``): numbers as a flat
  list, PNGs as base64 strings; outputs come back as JSON;
- ``binary``: what ``tritonclient.http`` sends with its defaults
  (``generate_request_body``): raw bytes after the JSON header
  (``Inference-Header-Content-Length``), outputs asked back as binary.

Load: ``wrk`` (closed loop, ``--connections``, ``--seconds`` per run) in a separate process
pinned to the train pool's cores, as ``serve_http.py`` runs it; the four variants take turns
in every repeat. Prints each run, then a table of req/s, rows/s, p50 and p99 per variant
(medians over ``--runs``) and, per kind, binary/JSON ratios of throughput and of p99.
Needs ``wrk`` (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from _images import CLASSES, image_schema, png_column, synthetic_images, tensor_schema
from serve_http import Run, median_run, wrk

from tandem.cluster import running_state
from tandem.models import build_model
from tandem.registry import InputSchema, Registry, TargetSchema, external_manifest
from tandem.sdk.inference import infer_body
from tandem.serve import binary
from tandem.settings import Settings

FACTORY = "tandem.models:image_cnn"
Kind = Literal["tensor", "image"]
Encoding = Literal["json", "binary"]
MODELS: dict[Kind, str] = {"tensor": "bench-pixels", "image": "bench-image"}
INPUTS: dict[Kind, str] = {"tensor": "pixels", "image": "image"}
FIT_IMAGES = 1024
"""Images the (untrained) models' input statistics are fitted on."""


@dataclass(frozen=True)
class Variant:
    kind: Kind
    encoding: Encoding
    body: bytes
    headers: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.encoding}"


def json_request(kind: Kind, rows: np.ndarray) -> Variant:
    value = png_column(rows) if kind == "image" else rows
    body = json.dumps(infer_body({INPUTS[kind]: value})).encode()
    return Variant(kind, "json", body, {})


def binary_request(kind: Kind, rows: np.ndarray) -> Variant:
    import tritonclient.http as triton  # only to build the body; not needed on the server

    if kind == "image":
        tensor = triton.InferInput(INPUTS[kind], [len(rows)], "BYTES")
        tensor.set_data_from_numpy(np.array(png_column(rows), dtype=object))
    else:
        tensor = triton.InferInput(INPUTS[kind], list(rows.shape), "UINT8")
        tensor.set_data_from_numpy(rows)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])
    headers = {"Content-Type": "application/octet-stream", binary.HEADER_LENGTH: str(json_size)}
    return Variant(kind, "binary", body, headers)


def variants(rows: np.ndarray) -> list[Variant]:
    """The four request bodies, each carrying the same ``rows`` (uint8 ``[N, 3, 32, 32]``)."""
    kinds: list[Kind] = ["tensor", "image"]
    return [build(kind, rows) for kind in kinds for build in (json_request, binary_request)]


def register(settings: Settings, schemas: dict[Kind, InputSchema], channels: list[int]) -> None:
    registry = Registry.default(settings)
    torch.manual_seed(0)
    for kind, schema in schemas.items():
        kwargs = {"channels": channels}
        target = TargetSchema(classes=CLASSES)
        manifest = external_manifest(
            MODELS[kind], FACTORY, kwargs, [schema], target, run_name="benchmark"
        )
        weights = build_model(FACTORY, kwargs, manifest.inputs, len(CLASSES)).state_dict()
        stored = registry.register(manifest, weights)
        registry.set_alias(stored.name, "production", stored.version)


def deploy(model: str, settings: Settings) -> None:
    """One replica on one serve-pool CPU, batching as ``serve_http.py`` does for digits."""
    from tandem.serve import control

    control.deploy(
        {
            "model": model,
            "batching": {"max_batch_size": 16, "max_wait_ms": 1},
            "max_ongoing_requests": 64,
            "cpus_per_replica": 1,
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        settings,
    )


def check_answer(url: str, variant: Variant, rows: int) -> None:
    """One request before the load: a 200 with ``rows`` labels, binary when asked."""
    response = httpx.post(url, content=variant.body, headers=variant.headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{variant.label}: HTTP {response.status_code}: {response.text[:500]}")
    length = response.headers.get(binary.HEADER_LENGTH)
    head = json.loads(response.content[: int(length)] if length else response.content)
    shapes = {o["name"]: o["shape"] for o in head["outputs"]}
    if shapes.get("label") != [rows] or (length is not None) != (variant.encoding == "binary"):
        raise RuntimeError(f"{variant.label}: unexpected answer {head} ({response.headers})")


def table(medians: dict[str, Run], variants: list[Variant], rows: int) -> str:
    lines = [
        f"{'input':<7} {'encoding':<8} {'body B':>9} {'req/s':>9} {'rows/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    ]
    for v in variants:
        m = medians[v.label]
        lines.append(
            f"{v.kind:<7} {v.encoding:<8} {len(v.body):>9,} {m.rps:>9,.0f} {m.rps * rows:>10,.0f} "
            f"{m.p50_ms:>8.1f} {m.p99_ms:>8.1f} {m.errors:>7}"
        )
    return "\n".join(lines)


def ratios(medians: dict[str, Run]) -> dict[str, dict[str, float]]:
    """Per kind: binary/JSON throughput (> 1: binary serves more) and p99 (< 1: binary faster)."""
    return {
        kind: {
            "throughput": medians[f"{kind}/binary"].rps / medians[f"{kind}/json"].rps,
            "p99": medians[f"{kind}/binary"].p99_ms / medians[f"{kind}/json"].p99_ms,
        }
        for kind in ("tensor", "image")
    }


def measure(
    args: argparse.Namespace, channels: list[int], pixels: np.ndarray
) -> tuple[list[Variant], dict[str, list[Run]], dict[str, list[int]]]:
    """Register, deploy, check and load every variant; the runs and the cluster's cores."""
    schemas: dict[Kind, InputSchema] = {
        "tensor": tensor_schema(INPUTS["tensor"], pixels),
        "image": image_schema(INPUTS["image"], pixels),
    }
    bodies = variants(pixels[: args.rows])
    runs: dict[str, list[Run]] = {v.label: [] for v in bodies}
    with private_cluster(args.port_base) as settings:
        state = running_state(settings)
        register(settings, schemas, channels)
        for model in MODELS.values():
            deploy(model, settings)
        base = f"http://127.0.0.1:{state.serve_http_port}/v2/models"
        urls = {v.label: f"{base}/{MODELS[v.kind]}/infer" for v in bodies}

        def load(v: Variant, seconds: int) -> Run:
            return wrk(
                urls[v.label], v.body, args.connections, seconds, state.cores["train"], v.headers
            )

        for v in bodies:
            check_answer(urls[v.label], v, args.rows)
            load(v, 2)  # warm-up
        for repeat in range(args.runs):
            for v in bodies:  # the variants take turns, so drift hits each alike
                run = load(v, args.seconds)
                runs[v.label].append(run)
                print(
                    f"run {repeat + 1} {v.label:<14} {run.rps:>8,.0f} req/s  "
                    f"p50 {run.p50_ms:.1f} ms  p99 {run.p99_ms:.1f} ms  errors {run.errors}",
                    flush=True,
                )
    return bodies, runs, state.cores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=8, help="images per request")
    parser.add_argument("--runs", type=int, default=3, help="repeats per variant")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--channels", default="16,32", help="image_cnn channels, comma-separated")
    parser.add_argument("--port-base", type=int, default=25000)
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    channels = [int(c) for c in args.channels.split(",")]
    pixels, _ = synthetic_images(max(FIT_IMAGES, args.rows))
    bodies, runs, cores = measure(args, channels, pixels)
    medians = {label: median_run(r) for label, r in runs.items()}
    print(
        f"\nimage_cnn{channels} untrained, {args.rows} rows/request, {args.connections} "
        f"connections, median of {args.runs} × {args.seconds} s; one replica per model on "
        f"serve cores {cores['serve']}, wrk on {cores['train']}"
    )
    print(table(medians, bodies, args.rows))
    report = ratios(medians)
    for kind, r in report.items():
        print(f"{kind:<7} binary/json: throughput {r['throughput']:.2f}×   p99 {r['p99']:.2f}×")
    if args.out:
        result = {
            "rows_per_request": args.rows,
            "connections": args.connections,
            "seconds": args.seconds,
            "channels": channels,
            "cores": cores,
            "body_bytes": {v.label: len(v.body) for v in bodies},
            "median": {label: asdict(m) for label, m in medians.items()},
            "ratios": report,
            "runs": {label: [asdict(r) for r in rs] for label, rs in runs.items()},
        }
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
