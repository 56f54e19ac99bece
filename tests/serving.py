"""Serving test helpers: small digits models in the registry, v2 request bodies, and a
bounded load loop that records every answer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tandem.models import build_model
from tandem.registry import (
    InputSchema,
    Manifest,
    Registry,
    TargetSchema,
    external_manifest,
    tabular_input,
)
from tandem.settings import Settings


@dataclass(frozen=True)
class Digits:
    x_val: np.ndarray
    y_val: np.ndarray
    offline: dict[int, np.ndarray]
    """Labels the in-process model predicts for ``x_val``, per registry version."""


def train(
    x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    inputs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    targets = torch.from_numpy(y)
    model = build_model("tandem.models:mlp", {"hidden": [64]}, [flat_input(x.shape[1])], 10)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()
    return model.state_dict(), mean, std


def flat_input(width: int) -> InputSchema:
    return tabular_input([f"pixel_{i}" for i in range(width)], [0.0] * width, [1.0] * width, [])


def offline_labels(
    weights: dict[str, torch.Tensor], mean: np.ndarray, std: np.ndarray, x: np.ndarray
) -> np.ndarray:
    model = build_model("tandem.models:mlp", {"hidden": [64]}, [flat_input(x.shape[1])], 10)
    model.load_state_dict(weights)
    with torch.inference_mode():
        logits = model.eval()(torch.from_numpy(((x - mean) / std).astype(np.float32)))
    return logits.argmax(1).numpy()


def manifest(
    name: str, x: np.ndarray, mean: np.ndarray, std: np.ndarray, accuracy: float
) -> Manifest:
    features = [f"pixel_{i}" for i in range(x.shape[1])]
    return external_manifest(
        name,
        "tandem.models:mlp",
        {"hidden": [64]},
        [tabular_input(features, mean.tolist(), std.tolist(), x[0].tolist())],
        TargetSchema(classes=list(range(10))),
        metrics={"val_accuracy": accuracy},
        run_name="in-test",
    )


def register_digits(settings: Settings, names: tuple[str, ...]) -> Digits:
    """Two versions of a small digits MLP under each of ``names``, v1 = production.

    The offline labels are the same for every name (same seeds, same data)."""
    data = load_digits()
    x = data.data.astype(np.float32)
    x_train, x_val, y_train, y_val = train_test_split(
        x, data.target, test_size=0.2, random_state=0, stratify=data.target
    )
    registry = Registry.default(settings)
    offline = {}
    for seed in (0, 1):
        weights, mean, std = train(x_train, y_train, seed)
        labels = offline_labels(weights, mean, std, x_val)
        accuracy = float((labels == y_val).mean())
        for name in names:
            stored = registry.register(manifest(name, x_train, mean, std, accuracy), weights)
        offline[stored.version] = labels
    for name in names:
        registry.set_alias(name, "production", 1)
    return Digits(x_val, y_val, offline)


def infer_body(rows: np.ndarray, request_id: str = "t") -> dict[str, object]:
    return {
        "id": request_id,
        "inputs": [
            {
                "name": "input",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.reshape(-1).tolist(),
            }
        ],
    }


def labels_of(answer: httpx.Response) -> list[int]:
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    return list(outputs["label"]["data"])


@dataclass
class LoadLoop:
    """A bounded closed loop of requests in threads, recording every status."""

    url: str
    body: dict[str, object]
    threads: int = 4
    max_requests: int = 20_000
    max_seconds: float = 120.0
    pause_s: float = 0.0
    """Sleep between one thread's requests (0: a closed loop as fast as answers come)."""
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    retry_after: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LoadLoop:
        deadline = time.monotonic() + self.max_seconds
        per_thread = self.max_requests // self.threads
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, args=(deadline, per_thread), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self, deadline: float, count: int) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(count):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    answer = client.post(self.url, json=self.body)
                except httpx.HTTPError as error:
                    with self._lock:
                        self.errors.append(repr(error))
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 503:
                        self.retry_after.add(answer.headers.get("retry-after", ""))
                    if answer.status_code == 200:
                        self.versions[answer.json()["model_version"]] += 1
                if self.pause_s:
                    time.sleep(self.pause_s)

    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values())


def ray_cli_env() -> dict[str, str]:
    """This process's environment plus ``tandem env``'s exports: Ray's own CLIs then reach
    the test cluster (address and token)."""
    exports = subprocess.run(
        [str(Path(sys.executable).parent / "tandem"), "env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = os.environ.copy()
    for line in exports.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    return env


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def running_replicas(app: str) -> int:
    from ray import serve

    from tandem.serve.app import MODEL_DEPLOYMENT

    status = serve.status().applications[app].deployments[MODEL_DEPLOYMENT]
    return int(status.replica_states.get("RUNNING", 0))
