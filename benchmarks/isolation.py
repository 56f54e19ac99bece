"""Serving tail latency while other pools work: does training or batch scoring slow
live traffic?

    .venv/bin/python benchmarks/isolation.py [--seconds 20] [--repeats 3]

On a private embedded cluster the digits MLP is served by one replica. Its capacity
is measured first (wrk, closed loop); then an open-loop generator (constant rate,
latency counted from when each request was due: benchmarks/_openloop.mjs where Node.js
is installed, else benchmarks/_openloop.py) offers ``--load`` (default 60%) of that
capacity, or ``--rate``, and records p50/p99/max and errors while
  (a) the cluster is idle,
  (b) a 2-worker training job of a wide MLP runs in the train pool,
  (c) a batch-prediction job runs in the batch pool,
  (b+c) both at once,
  and, as a floor for those, two synthetic processes started as a throughput node is
  (``SYNTHETIC``: busy loops, memory sweeps, loopback TCP streams);
with static pools (the default), then on a work-conserving cluster (training may
also run on the serve cores: (a), (b), (b+c)) and with pools disabled (every node
on every core: (a), (b)), each a fresh cluster (``--modes`` picks some). Before
each mode's scenarios, the training job's throughput with serving idle (median
samples/s of epochs 2-4).
The generator runs as its own process on the cores the serve pool does not own, at
nice -10 where permitted: a client on another machine is not slowed by this one's
training, so neither may the client here be (it would measure itself, not Serve).
Each run also reports where CPU time went meanwhile (``/proc/*/task/*/schedstat``):
HAProxy's and the replica's CPU time and run-queue wait, and the busiest other processes.
Prints medians over ``--repeats``, each scenario's p99 over the static pools' idle p99,
and each mode's training throughput over the pools-disabled one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
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
from _schedstat import Thread, all_pids, per_process, read_threads
from serve_http import body_for, deploy_digits, register_models, wrk
from train_ingest import spec_for, write_dataset

from tandem.cluster import local
from tandem.cluster.layout import THROUGHPUT_GROUP_NICENESS, THROUGHPUT_NICENESS
from tandem.registry.manifest import Manifest
from tandem.sdk import Client, Job
from tandem.settings import Settings

OPEN_LOOP = Path(__file__).resolve().parent / "_openloop.py"
OPEN_LOOP_NODE = OPEN_LOOP.with_suffix(".mjs")
"""The same generator in Node.js, for rates a Python event loop cannot keep on schedule."""
NODE = shutil.which("node") is not None
"""Offer the load with the Node.js generator where node is installed (the Python one falls
behind its own schedule above ~1,200 req/s here)."""
TRAIN_HIDDEN = [1024, 1024, 1024]
BATCH_ROWS = 400_000
WARM_UP_S = 15.0


CLIENT_NICE = -10


def client_process(cores: list[int]) -> None:
    """Runs in the load generator's child before exec: its cores, a high priority."""
    os.sched_setaffinity(0, set(cores))
    with contextlib.suppress(PermissionError):
        os.nice(CLIENT_NICE)


def open_loop(
    url: str,
    body: str,
    rate: float,
    seconds: float,
    cores: list[int],
    node: bool = False,
    timeline_ms: int = 0,
) -> dict:
    """One open-loop run (``node``: the Node.js generator) as its own process on ``cores``;
    ``timeline_ms`` (Node.js only): also each window's request count and max latency."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(body)
    generator = ["node", str(OPEN_LOOP_NODE)] if node else [sys.executable, str(OPEN_LOOP)]
    command = [*generator, "--url", url, "--body-file", handle.name]
    command += ["--rate", str(rate), "--seconds", str(seconds)]
    if timeline_ms:
        command += ["--timeline-ms", str(timeline_ms)]
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
    serve_cores: list[int],
) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in scenarios}
    for repeat in range(args.repeats):
        for name, background in scenarios.items():
            labels: dict[Thread, str] = {}
            with background():
                before = read_threads(all_pids(), labels, set(serve_cores))
                result = open_loop(url, body, rate, args.seconds, cores, NODE)
                after = read_threads(all_pids(), labels, set(serve_cores))
            spent = per_process(before, after, labels)
            result |= request_path_time(spent)
            runs[name].append(result)
            print(
                f"repeat {repeat + 1} {name:<18} p50 {result['p50_ms']:7.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  max {result['max_ms']:7.1f} ms  "
                f"errors {result['errors']}  ({result['achieved_rps']:.0f} req/s)\n"
                f"    {where_time_went(result, spent)}",
                flush=True,
            )
    return runs


REQUEST_PATH = {"haproxy": "haproxy[", "replica": "ray::ServeReplica:digits"}


def request_path_time(spent: dict[str, tuple[float, float]]) -> dict[str, float]:
    """HAProxy's and the digits replica's CPU and run-queue wait (ms) over one run."""
    times: dict[str, float] = {}
    for part, prefix in REQUEST_PATH.items():
        matching = [value for process, value in spent.items() if process.startswith(prefix)]
        times[f"{part}_cpu_ms"] = sum(run for run, _ in matching)
        times[f"{part}_wait_ms"] = sum(wait for _, wait in matching)
    return times


def where_time_went(result: dict, spent: dict[str, tuple[float, float]]) -> str:
    """The request path's CPU and run-queue wait, and the busiest other processes."""
    path = "; ".join(
        f"{part} CPU {result[f'{part}_cpu_ms']:,.0f} ms, waited {result[f'{part}_wait_ms']:,.0f}"
        for part in REQUEST_PATH
    )
    others = sorted(
        (item for item in spent.items() if not item[0].startswith(tuple(REQUEST_PATH.values()))),
        key=lambda item: -item[1][0],
    )[:4]
    return path + "; busiest others (CPU ms): " + ", ".join(f"{p} {t:,.0f}" for p, (t, _) in others)


def serve_digits(settings: Settings) -> tuple[local.ClusterState, str, str]:
    """Register and deploy the digits MLP on a private cluster: its state, the infer URL
    and a 1-row v2 JSON body."""
    state = local.ClusterState.read(settings)
    assert state is not None
    x = register_models(settings)
    deploy_digits(settings)
    url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/digits/infer"
    return state, url, body_for(x, 1)


def closed_loop_capacity(url: str, body: str, cores: list[int]) -> float:
    """wrk -c16 from ``cores``: median req/s of three 5 s runs after a 3 s warm-up."""
    wrk(url, body, 16, 3, cores)
    return statistics.median(wrk(url, body, 16, 5, cores).rps for _ in range(3))


MODES = {  # name → (pinned, work_conserving)
    "static": (True, False),
    "work-conserving": (True, True),
    "no pools": (False, False),
}


def scenarios_for(
    mode: str,
    client: Client,
    train_data: Path,
    batch_inputs: Path,
    home: Path,
    train_cores: list[int],
) -> dict[str, Callable[[], AbstractContextManager[None]]]:
    train = partial(training, client, train_data)
    batch = partial(batch_scoring, client, batch_inputs, home)
    chosen: dict[str, Callable[[], AbstractContextManager[None]]] = {
        "idle": nullcontext,
        "training": train,
    }
    if mode != "no pools":
        chosen["training + batch"] = partial(both, train, batch)
    if mode == "static":
        chosen["batch"] = batch
        for name, code in SYNTHETIC.items():
            chosen[name] = partial(synthetic_load, code, train_cores)
    return {f"{mode}: {name}": background for name, background in chosen.items()}


SYNTHETIC = {
    "2 busy loops": "while True: pass",
    "2 memory sweeps": "import numpy as np\na = np.ones(8_000_000)\nwhile True: a *= 1.0000001",
    "2 loopback streams": (
        "import socket, threading\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "def drain():\n"
        "    peer, _ = server.accept(); buffer = bytearray(1 << 20)\n"
        "    while peer.recv_into(buffer): pass\n"
        "threading.Thread(target=drain, daemon=True).start()\n"
        "sender = socket.create_connection(server.getsockname()); chunk = b'x' * (1 << 20)\n"
        "while True: sender.sendall(chunk)\n"
    ),
}
"""Synthetic throughput work, two processes each: what any work on the train pool's cores
costs serving, as a floor for the real jobs (a busy loop touches little but the core; a
sweep over 64 MB also the caches and memory bus; a loopback TCP stream, as DDP's
all-reduce and Ray's object transfers are, also the kernel's network processing)."""


def throughput_process(cores: list[int]) -> None:
    """Runs in a synthetic load's child before exec: started as a throughput node is (its
    own session and scheduling group at the group's nice level, its workers' nice level,
    the pool's cores)."""
    os.setsid()
    local.lower_group_priority(THROUGHPUT_GROUP_NICENESS)
    os.nice(THROUGHPUT_NICENESS)
    os.sched_setaffinity(0, set(cores))


@contextmanager
def synthetic_load(code: str, cores: list[int]) -> Iterator[None]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], preexec_fn=partial(throughput_process, cores)
        )
        for _ in range(2)
    ]
    try:
        time.sleep(1)  # running
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def training_throughput(client: Client, data: Path, epochs: int = 4) -> float:
    """Median samples/s of epochs 2..``epochs`` of the isolation job, serving idle."""
    spec = spec_for(data, epochs=epochs, hidden=TRAIN_HIDDEN, workers=2, name="isolation-speed")
    job = client.submit(spec)
    wait_for_log(job, f"epoch {epochs}/")
    rates = [float(m) for m in re.findall(r"samples/s=(\d+)", job.logs())]
    job.stop()
    return statistics.median(rates[1:])


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
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    speeds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        train_data = write_dataset(Path(folder), 50_000)
        batch_inputs = write_batch_inputs(Path(folder))
        rate = args.rate or 0.0
        for mode in args.modes:
            pinned, work_conserving = MODES[mode]
            with private_cluster(
                args.port_base, pinned=pinned, work_conserving=work_conserving
            ) as settings:
                state, url, body = serve_digits(settings)
                client = Client()
                client_cores = state.cores["train"]
                if not rate:
                    capacity = closed_loop_capacity(url, body, client_cores)
                    rate = args.load * capacity
                    print(f"capacity {capacity:,.0f} req/s; offering {rate:,.0f} req/s", flush=True)
                speeds[mode] = training_throughput(client, train_data)
                print(f"{mode}: training {speeds[mode]:,.0f} samples/s, serving idle", flush=True)
                scenarios = scenarios_for(
                    mode, client, train_data, batch_inputs, settings.home, state.cores["train"]
                )
                runs |= measure(
                    scenarios, url, body, rate, args, client_cores, state.cores["serve"]
                )
                client.close()
    medians = (
        "p50_ms",
        "p99_ms",
        "max_ms",
        *(f"{part}_{t}_ms" for part in REQUEST_PATH for t in ("cpu", "wait")),
    )
    summary = {
        name: {k: statistics.median(r[k] for r in results) for k in medians}
        | {"errors": sum(r["errors"] for r in results)}
        for name, results in runs.items()
    }
    print(f"\noffered {rate:,.0f} req/s, {args.seconds:.0f} s per run, medians of {args.repeats}")
    for name, row in summary.items():
        print(
            f"{name:<34} p50 {row['p50_ms']:7.2f}  p99 {row['p99_ms']:7.2f}  "
            f"max {row['max_ms']:7.1f} ms  errors {row['errors']}  "
            f"HAProxy CPU {row['haproxy_cpu_ms']:,.0f} ms, waited {row['haproxy_wait_ms']:,.0f}; "
            f"replica CPU {row['replica_cpu_ms']:,.0f} ms, waited {row['replica_wait_ms']:,.0f}"
        )
    # The baseline is the static cluster's idle p99 where it ran: the other modes' idle
    # runs follow a stopped job whose processes ran on the serve cores.
    baseline = "static: idle" if "static: idle" in summary else f"{args.modes[0]}: idle"
    for name in summary:
        if name != baseline:
            ratio = summary[name]["p99_ms"] / summary[baseline]["p99_ms"]
            print(f"p99 {name} / {baseline} = {ratio:.2f}x")
    for mode, speed in speeds.items():
        print(f"training samples/s {mode}: {speed:,.0f}", end="")
        if "no pools" in speeds:
            print(f" ({speed / speeds['no pools']:.2f}x no pools)", end="")
        print()


if __name__ == "__main__":
    main()
