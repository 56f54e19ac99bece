"""The one-command demo: data → 2-worker training → registry → production → serving → load.

Every step is an SDK call; the CLI (``tandem quickstart``) only prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tandem.data import write_digits
from tandem.data.digits import FEATURES
from tandem.registry.manifest import Manifest
from tandem.sdk.client import Client

REPO = Path(__file__).resolve().parents[3]
TRAIN_SPEC = REPO / "jobs" / "specs" / "digits-mlp.yaml"
DEPLOYMENT = REPO / "deployments" / "digits-mlp.yaml"
DATA = "data/digits"
CONCURRENCY = 8
"""Requests in flight at once: a closed loop, so load is bounded however fast the server is."""


@dataclass(frozen=True)
class LoadResult:
    """One request per validation row, sent over real HTTP."""

    requests: int
    correct: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def accuracy(self) -> float:
        return self.correct / self.requests

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_ms, percentile))


@dataclass(frozen=True)
class QuickstartReport:
    manifest: Manifest
    load: LoadResult
    endpoint: str
    seconds: float

    @property
    def curl(self) -> str:
        schema = self.manifest.inputs[0]
        assert isinstance(schema.example, list), "the quickstart model has one tabular input"
        example = ", ".join(f"{v:g}" for v in schema.example)
        body = (
            f'{{"inputs": [{{"name": "{schema.name}", "shape": [1, {len(schema.example)}], '
            f'"datatype": "FP32", "data": [{example}]}}]}}'
        )
        return (
            f"curl -s {self.endpoint}/v2/models/{self.manifest.name}/infer "
            f"-H 'Content-Type: application/json' -d '{body}'"
        )


def send_rows(
    client: Client, name: str, rows: np.ndarray, labels: np.ndarray, concurrency: int
) -> LoadResult:
    """One infer request per row, ``concurrency`` at a time; latency is per request."""

    def one(index: int) -> tuple[bool, float]:
        started = time.perf_counter()
        outputs = client.predict(name, rows[index])
        return bool(outputs["label"][0] == labels[index]), time.perf_counter() - started

    client.predict(name, rows[0])  # resolves the input name once, outside the timing
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(one, range(len(rows))))
    seconds = time.perf_counter() - started
    return LoadResult(
        requests=len(rows),
        correct=sum(ok for ok, _ in answers),
        seconds=seconds,
        latencies_ms=np.array([latency * 1000 for _, latency in answers]),
    )


def run(
    client: Client, say: Callable[[str], None], show_logs: Callable[[str], None]
) -> QuickstartReport:
    started = time.monotonic()
    say("starting the embedded cluster")
    client.up()
    data = client.settings.resolve_uri(DATA)
    counts = write_digits(data)
    say(f"wrote digits: {counts['train']} train, {counts['validation']} validation rows → {data}")
    say(f"training {TRAIN_SPEC.name} with 2 DDP workers in the train pool")
    job = client.submit(TRAIN_SPEC)
    for chunk in job.logs(follow=True):
        show_logs(chunk)
    manifest = job.wait()
    say(f"registered {manifest.name} v{manifest.version}")
    client.promote(manifest.name, manifest.version, alias="production")
    say(f"promoted v{manifest.version} to production; deploying {DEPLOYMENT.name}")
    client.deploy(DEPLOYMENT)
    validation = pd.read_parquet(f"{data}/validation.parquet")
    rows = validation[FEATURES].to_numpy(dtype=np.float32)
    say(f"sending {len(rows)} validation rows over HTTP, {CONCURRENCY} in flight")
    load = send_rows(client, manifest.name, rows, validation["label"].to_numpy(), CONCURRENCY)
    return QuickstartReport(manifest, load, client.endpoint, time.monotonic() - started)
