"""Serving tail latency while other pools work: does training or batch scoring slow
live traffic?

    .venv/bin/python benchmarks/isolation.py [--seconds 20] [--repeats 3]

On a private embedded cluster the digits MLP is served by one replica. Its capacity
is measured first (wrk, closed loop); then an open-loop generator
(benchmarks/_openloop.py: constant rate, latency counted from when each request was
due) offers ``--load`` (default 60%) of that capacity and records p50/p99/max and
errors while
  (a) the cluster is idle,
  (b) a 2-worker training job of a wide MLP runs in the train pool,
  (c) a batch-prediction job runs in the batch pool,
  (b+c) both at once;
then the cluster restarts with pools disabled (every node on every core) and
  (d) repeats (b) at the same offered rate.
The generator runs as its own process on the cores the serve pool does not own, at
nice -10 where permitted: a client on another machine is not slowed by this one's
training, so neither may the client here be (it would measure itself, not Serve).
Prints medians over ``--repeats`` and the ratios (b)/(a), (c)/(a), (d)/(a).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from serve_http import body_for, deploy_digits, register_models, wrk
from train_ingest import spec_for, write_dataset

from tandem.cluster import local
from tandem.registry.manifest import Manifest
from tandem.sdk import Client, Job

OPEN_LOOP = Path(__file__).resolve().parent / "_openloop.py"
TRAIN_HIDDEN = [1024, 1024, 1024]
BATCH_ROWS = 400_000
WARM_UP_S = 15.0


CLIENT_NICE = -10


def client_process(cores: list[int]) -> None:
    """Runs in the load generator's child before exec: its cores, a high priority."""
    os.sched_setaffinity(0, set(cores))
    with contextlib.suppress(PermissionError):
        os.nice(CLIENT_NICE)


def open_loop(url: str, body: str, rate: float, seconds: float, cores: list[int]) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(body)
    command = [sys.executable, str(OPEN_LOOP), "--url", url, "--body-file", handle.name]
    command += ["--rate", str(rate), "--seconds", str(seconds)]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
        preexec_fn=partial(client_process, cores),
    ).stdout
    os.unlink(handle.name)
    return json.loads(out)


@contextmanager
def training(client: Client, data: Path) -> Iterator[None]:
    """A 2-worker DDP job of a wide MLP, long enough to outlast the measurement."""
    spec = spec_for(data, epochs=1000, hidden=TRAIN_HIDDEN, workers=2, name="isolation-train")
    job = client.submit(spec)
    try:
        wait_for_log(job, "epoch 1/")  # past data checks and statistics: DDP steps running
        yield
    finally:
        job.stop()


@contextmanager
def batch_scoring(client: Client, inputs: Path, home: Path) -> Iterator[None]:
    """Batch prediction of the wide (heavy) MLP over ``BATCH_ROWS`` rows."""
    job = client.batch_predict(
        "heavy-batched", str(inputs), str(home / f"scored-{time.time_ns()}"), wait=False
    )
    try:
        wait_running(job.status)
        time.sleep(WARM_UP_S)
        yield
    finally:
        job.stop()


@contextmanager
def both(
    first: Callable[[], AbstractContextManager[None]],
    second: Callable[[], AbstractContextManager[None]],
) -> Iterator[None]:
    with first(), second():
        yield


def wait_for_log(job: Job[Manifest], text: str) -> None:
    deadline = time.monotonic() + 300
    while text not in job.logs():
        if time.monotonic() > deadline or job.status() in ("FAILED", "STOPPED", "SUCCEEDED"):
            raise RuntimeError(f"the training job is {job.status()} before {text!r} was logged")
        time.sleep(1)


def wait_running(status: Callable[[], str]) -> None:
    deadline = time.monotonic() + 120
    while status() != "RUNNING":
        if time.monotonic() > deadline or status() in ("FAILED", "STOPPED", "SUCCEEDED"):
            raise RuntimeError(f"the background job is {status()}, not RUNNING")
        time.sleep(0.5)


def write_batch_inputs(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.uniform(0, 16, size=(BATCH_ROWS, 64)).astype(np.float32),
        columns=[f"pixel_{i}" for i in range(64)],
    )
    path = folder / "to-score.parquet"
    frame.to_parquet(path, index=False, row_group_size=20_000)
    return path


def measure(
    scenarios: dict[str, Callable[[], AbstractContextManager[None]]],
    url: str,
    body: str,
    rate: float,
    args: argparse.Namespace,
    cores: list[int],
) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in scenarios}
    for repeat in range(args.repeats):
        for name, background in scenarios.items():
            with background():
                result = open_loop(url, body, rate, args.seconds, cores)
            runs[name].append(result)
            print(
                f"repeat {repeat + 1} {name:<18} p50 {result['p50_ms']:7.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  max {result['max_ms']:7.1f} ms  "
                f"errors {result['errors']}  ({result['achieved_rps']:.0f} req/s)",
                flush=True,
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=float, default=0.6, help="share of measured capacity")
    parser.add_argument(
        "--rate",
        type=float,
        help="offer this many req/s instead (e.g. 70%% of serve_tail.py's SLO capacity)",
    )
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        train_data = write_dataset(Path(folder), 50_000)
        batch_inputs = write_batch_inputs(Path(folder))
        rate = 0.0
        for pinned in (True, False):
            with private_cluster(args.port_base, pinned=pinned) as settings:
                state = local.ClusterState.read(settings)
                assert state is not None
                x = register_models(settings)
                deploy_digits(settings)
                url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/digits/infer"
                body = body_for(x, 1)
                client = Client()
                client_cores = state.cores["train"]
                if pinned:
                    wrk(url, body, 16, 3, client_cores)  # warm-up
                    capacity = statistics.median(
                        wrk(url, body, 16, 5, client_cores).rps for _ in range(3)
                    )
                    rate = args.rate or args.load * capacity
                    print(f"capacity {capacity:,.0f} req/s; offering {rate:,.0f} req/s", flush=True)
                    train = partial(training, client, train_data)
                    batch = partial(batch_scoring, client, batch_inputs, settings.home)
                    scenarios = {
                        "(a) idle": nullcontext,
                        "(b) training": train,
                        "(c) batch": batch,
                        "(b+c) training + batch": partial(both, train, batch),
                    }
                else:
                    scenarios = {
                        "(d) no pools, idle": nullcontext,
                        "(d) no pools, training": partial(training, client, train_data),
                    }
                runs |= measure(scenarios, url, body, rate, args, client_cores)
                client.close()
    summary = {
        name: {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p99_ms", "max_ms")}
        | {"errors": sum(r["errors"] for r in results)}
        for name, results in runs.items()
    }
    print(f"\noffered {rate:,.0f} req/s, {args.seconds:.0f} s per run, medians of {args.repeats}")
    for name, row in summary.items():
        print(
            f"{name:<24} p50 {row['p50_ms']:7.2f}  p99 {row['p99_ms']:7.2f}  "
            f"max {row['max_ms']:7.1f} ms  errors {row['errors']}"
        )
    idle = summary["(a) idle"]["p99_ms"]
    for name in ("(b) training", "(c) batch", "(b+c) training + batch", "(d) no pools, training"):
        print(f"p99 {name} / (a) idle = {summary[name]['p99_ms'] / idle:.2f}x")


if __name__ == "__main__":
    main()
