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

from tandem.data import FEATURES
from tandem.defaults import recipe
from tandem.registry import Manifest
from tandem.sdk.client import Client

TRAIN_SPEC = "jobs/specs/digits-mlp.yaml"
DEPLOYMENT = "deployments/digits-mlp.yaml"
"""The recipes it trains and deploys, shipped in the package (``tandem.defaults.recipe``)."""
DATA = "data/digits"
CONCURRENCY = 8
"""Requests in flight at once: a closed loop, so load is bounded however fast the server is."""
WINDOW_S = 5.0
"""The timed window, after every validation row went once (the warm-up)."""


@dataclass(frozen=True)
class Accuracy:
    """Every validation row sent once over real HTTP: how many labels came back right."""

    requests: int
    correct: int

    @property
    def ratio(self) -> float:
        return self.correct / self.requests


@dataclass(frozen=True)
class LoadResult:
    """A steady window of requests, after a warm-up: throughput and latency per request."""

    requests: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_ms, percentile))


@dataclass(frozen=True)
class QuickstartReport:
    manifest: Manifest
    accuracy: Accuracy
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


def score_rows(
    client: Client, name: str, rows: np.ndarray, labels: np.ndarray, concurrency: int
) -> Accuracy:
    """One infer request per row, ``concurrency`` at a time. Also the timing window's warm-up:
    replicas, connections and the client's threads are past their first requests after it."""

    def one(index: int) -> bool:
        return bool(client.predict(name, rows[index])["label"][0] == labels[index])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        correct = sum(pool.map(one, range(len(rows))))
    return Accuracy(requests=len(rows), correct=correct)


def timed_load(
    client: Client, name: str, rows: np.ndarray, concurrency: int, seconds: float
) -> LoadResult:
    """``concurrency`` clients sending rows back to back for ``seconds``, each timing its
    own requests (a closed loop: load is bounded however fast the server is)."""
    deadline = time.perf_counter() + seconds

    def client_loop(offset: int) -> list[float]:
        latencies = []
        index = offset
        while (started := time.perf_counter()) < deadline:
            client.predict(name, rows[index % len(rows)])
            latencies.append((time.perf_counter() - started) * 1000)
            index += concurrency
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = [ms for part in pool.map(client_loop, range(concurrency)) for ms in part]
    return LoadResult(len(latencies), time.perf_counter() - started, np.array(latencies))


def run(
    client: Client, say: Callable[[str], None], show_logs: Callable[[str], None]
) -> QuickstartReport:
    with recipe(TRAIN_SPEC) as train_spec, recipe(DEPLOYMENT) as deployment:
        return run_recipes(client, train_spec, deployment, say, show_logs)


def run_recipes(
    client: Client,
    train_spec: Path,
    deployment: Path,
    say: Callable[[str], None],
    show_logs: Callable[[str], None],
) -> QuickstartReport:
    started = time.monotonic()
    say("starting the embedded cluster")
    client.up()
    data = client.write_digits(DATA)
    split = f"{data.train_rows} train, {data.validation_rows} validation rows"
    say(f"wrote digits: {split} → {data.uri}")
    say(f"training {train_spec.name} with 2 DDP workers in the train pool")
    job = client.submit(train_spec)
    for chunk in job.logs(follow=True):
        show_logs(chunk)
    manifest = job.wait()
    say(f"registered {manifest.name} v{manifest.version}")
    client.promote(manifest.name, manifest.version, alias="production")
    say(f"promoted v{manifest.version} to production; deploying {deployment.name}")
    client.deploy(deployment)
    validation = pd.read_parquet(f"{data.uri}/validation.parquet")
    rows = validation[FEATURES].to_numpy(dtype=np.float32)
    say(f"sending {len(rows)} validation rows over HTTP, {CONCURRENCY} in flight")
    labels = validation["label"].to_numpy()
    accuracy = score_rows(client, manifest.name, rows, labels, CONCURRENCY)
    say(f"timing {WINDOW_S:.0f} s of steady load, {CONCURRENCY} in flight")
    load = timed_load(client, manifest.name, rows, CONCURRENCY, WINDOW_S)
    return QuickstartReport(manifest, accuracy, load, client.endpoint, time.monotonic() - started)
