"""The GPU path, end to end, on one machine with a GPU: what ``benchmarks/gpu_check.sh`` runs.

    python benchmarks/gpu_check.py [--out DIR] [--epochs 5] [--seconds 5] [--rows 50000]

Needs a visible GPU (exits 2 at once without one) and Tandem's own environment (Ray,
pydantic...; ``gpu_check.sh`` sets it up from carried packages). ``TANDEM_HOME`` must name
a fresh folder: this starts and stops its own embedded clusters there, on their own ports.

One GPU cannot be in two pools, so the check runs three short clusters in turn, each with
a cluster file whose one node type declares ``GPU: 1`` (the pool split gives that pool the
GPU, and ``tandem status`` shows it there):

1. train: ``jobs/specs/digits-image.yaml`` (one worker, ``--epochs``) on CPU and with
   ``use_gpu: true`` → train samples/s (median of the epochs after the first) and GPU
   memory seen by ``nvidia-smi`` while it runs;
2. serve: the GPU-trained version, deployed as one replica with ``gpus_per_replica: 1``
   (fp32, bf16 and fp16; batched and unbatched) and with ``gpus_per_replica: 0``. Each
   replica's log must say its model is on ``cuda:0`` (or ``cpu``); its predictions on the
   validation split must match a CPU ``ModelRunner`` in this process (the GPU-trained
   weights loaded on CPU) within the precision's tolerance; a closed loop of
   ``--concurrency`` clients, pinned to the idle train pool's cores, gives req/s and p99;
3. batch: the CPU-trained version scores ``--rows`` rows (the validation split repeated)
   with ``gpus_per_actor: 1`` and on CPU → rows/s, and its labels must match the CPU runner.

Prints every check and a GPU-vs-CPU table, writes ``gpu_check.json`` and ``gpu_check.md``
to ``--out`` (and the Ray logs on failure). Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PORT_BASES = {"train": 27000, "serve": 28000, "batch": 29000}
TOLERANCE = {"fp32": 2e-3, "bf16": 3e-2, "fp16": 5e-3}
"""Largest difference in any probability from the CPU fp32 runner. fp32 is not exact on
the GPU: cuDNN convolutions use TF32 by PyTorch's default."""
SERVE_CONFIGS = [
    # label, gpus_per_replica, precision, max_batch_size
    ("gpu fp32 batched", 1, "fp32", 32),
    ("gpu fp32 unbatched", 1, "fp32", 1),
    ("gpu bf16 batched", 1, "bf16", 32),
    ("gpu fp16 batched", 1, "fp16", 32),
    ("cpu fp32 batched", 0, "fp32", 32),
    ("cpu fp32 unbatched", 0, "fp32", 1),
]
LOADED = "tandem runner loaded: "
"""What replicas and batch actors log when a version is ready (``ModelRunner.describe``)."""


# --- bookkeeping ---------------------------------------------------------------------


@dataclass
class Report:
    checks: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    gpu: str = ""

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)
        return ok

    def failed(self) -> list[str]:
        return [c["check"] for c in self.checks if not c["ok"]]


class GpuSampler:
    """``nvidia-smi`` twice a second in a thread: the most GPU memory and utilisation seen."""

    def __init__(self) -> None:
        self.memory_mib = 0.0
        self.utilisation = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = [
            "nvidia-smi",
            "--query-gpu=memory.used,utilization.gpu",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.wait(0.5):
            out = subprocess.run(query, capture_output=True, text=True)
            for line in out.stdout.splitlines():
                numbers = re.findall(r"[\d.]+", line)
                if len(numbers) >= 2:
                    self.memory_mib = max(self.memory_mib, float(numbers[0]))
                    self.utilisation = max(self.utilisation, float(numbers[1]))

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def require_gpu() -> str:
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: no GPU is visible (torch.cuda.is_available() is false, "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, torch "
            f"{torch.__version__}); this check proves nothing without one",
            file=sys.stderr,
        )
        raise SystemExit(2)
    # nvidia-smi, not torch: a CUDA context here would hold GPU memory all along.
    name = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
    ).stdout.strip()
    return f"{name} (torch {torch.__version__}, CUDA {torch.version.cuda})"


# --- clusters ------------------------------------------------------------------------


def cluster_file(home: Path, gpu_pool: str) -> Path:
    """The repo's cluster.yaml with ``GPU: 1`` on ``gpu_pool``'s node type only."""
    import yaml

    from tandem.specs.base import read_yaml

    config = read_yaml(REPO / "cluster.yaml")
    config["available_node_types"][gpu_pool]["resources"]["GPU"] = 1
    path = home / f"cluster-gpu-{gpu_pool}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def cluster(home: Path, gpu_pool: str, report: Report) -> Iterator[Any]:
    """An embedded cluster whose ``gpu_pool`` owns the GPU(s); stopped on the way out."""
    import ray

    from tandem.cluster import local, session
    from tandem.settings import Settings

    os.environ["TANDEM_CLUSTER_FILE"] = str(cluster_file(home, gpu_pool))
    os.environ["TANDEM_PORT_BASE"] = str(PORT_BASES[gpu_pool])
    settings = Settings.from_env()
    started = time.monotonic()
    state = session.up(settings)
    try:
        print(f"\n== the GPU in pool {gpu_pool!r}: up in {time.monotonic() - started:.0f}s")
        owners = sorted(name for name, gpus in state.gpus.items() if gpus)
        report.check(
            f"pool split: only {gpu_pool} has a GPU", owners == [gpu_pool], f"{state.gpus}"
        )
        status = subprocess.run(
            ["tandem", "status"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )
        print(status.stdout or status.stderr, flush=True)
        yield settings, state
    finally:
        ray.shutdown()
        local.stop(settings)


def replica_log_count(settings: Any, line: str) -> int:
    """How often ``line`` occurs in this cluster's Ray logs (Serve's replica logs included)."""
    from tandem.cluster.local import ray_log_dirs

    count = 0
    for logs in ray_log_dirs(settings):
        for path in logs.rglob("*"):
            if path.is_file() and path.suffix in (".log", ".out", ".err"):
                count += path.read_text(errors="replace").count(line)
    return count


def wait_for_log(settings: Any, line: str, more_than: int, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica_log_count(settings, line) > more_than:
            return True
        time.sleep(0.5)
    return False


# --- parity --------------------------------------------------------------------------


def compare(
    report: Report,
    name: str,
    expected: dict[str, np.ndarray],
    got: dict[str, np.ndarray],
    tolerance: float,
) -> None:
    """Probabilities within ``tolerance`` of the CPU runner's, and equal labels except on
    rows whose top two CPU probabilities are closer than that (a tie either way is right)."""
    want, have = expected["probabilities"], np.asarray(got["probabilities"], dtype=np.float32)
    worst = float(np.abs(want - have).max())
    top2 = np.sort(want, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) < 2 * tolerance
    differ = np.asarray(got["label"]) != expected["label"]
    report.check(
        f"parity: {name}",
        worst <= tolerance and not (differ & ~near_tie).any(),
        f"{int((~differ).sum())}/{len(differ)} labels equal to the CPU runner's "
        f"({int(differ.sum())} differ, {int((differ & near_tie).sum())} of them near-ties), "
        f"max |Δp| {worst:.2e} (tolerance {tolerance:g})",
    )


def validation_frame(home: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(home / "data" / "digits" / "validation.parquet")


def cpu_outputs(registry: Any, model: str, version: int, frame: Any) -> dict[str, np.ndarray]:
    """What a CPU fp32 runner (in this process, no GPU) says about ``frame``'s rows."""
    from tandem.batch.transform import Scorer
    from tandem.models import load_runner

    runner = load_runner(registry, model, version)
    assert runner.model_device.type == "cpu"
    return Scorer(runner, None)({c: frame[c].to_numpy() for c in frame.columns})


# --- phases --------------------------------------------------------------------------


def wait_or_show_logs(job: Any) -> Any:
    """The job's result; on failure its log's end is printed before the error goes up."""
    try:
        return job.wait(timeout_s=600)
    except Exception:
        print(f"--- the end of {job.submission_id}'s log:\n{job.logs()[-4000:]}", flush=True)
        raise


def train_spec(name: str, use_gpu: bool, epochs: int) -> dict[str, Any]:
    from tandem.specs.base import read_yaml

    spec = read_yaml(REPO / "jobs" / "specs" / "digits-image.yaml")
    spec["name"] = name
    spec["train"]["epochs"] = epochs
    # One worker on both devices (one GPU), the same CPU threads each.
    spec["scaling"] = {"num_workers": 1, "use_gpu": use_gpu, "cpus_per_worker": 4}
    return dict(spec)


def train(client: Any, report: Report, device: str, epochs: int) -> Any:
    name = f"gpucheck-{device}"
    started = time.monotonic()
    with GpuSampler() as gpu:
        job = client.train(train_spec(name, device == "gpu", epochs), wait=False)
        manifest = wait_or_show_logs(job)
    logs = job.logs()
    rates = [float(r) for r in re.findall(r"samples/s=(\d+)", logs)]
    report.figures[f"train {device}"] = {
        "samples_per_s": statistics.median(rates[1:] or rates),
        "first_epoch_samples_per_s": rates[0] if rates else None,
        "job_s": round(time.monotonic() - started, 1),
        "val_accuracy": manifest.metrics.get("val_accuracy"),
        "gpu_memory_max_mib": gpu.memory_mib,
        "gpu_utilisation_max": gpu.utilisation,
    }
    print(f"train {device}: {report.figures[f'train {device}']}", flush=True)
    accuracy = manifest.metrics.get("val_accuracy", 0.0)
    report.check(
        f"train on {device} converges",
        accuracy > 0.8,
        f"val_accuracy {accuracy:.3f} after {epochs} epochs",
    )
    return manifest


def serve_phase(home: Path, args: argparse.Namespace, report: Report, trained: Any) -> None:
    from tandem.registry import Registry
    from tandem.sdk import Client
    from tandem.sdk.inference import infer_body

    with cluster(home, "serve", report) as (settings, state):
        client = Client()
        frame = validation_frame(home)
        name, version = trained.name, trained.version
        expected = cpu_outputs(Registry.default(client.settings), name, version, frame)
        accuracy = (expected["label"] == frame["label"].to_numpy()).mean()
        report.check(
            "a GPU-trained version loads on CPU",
            accuracy > 0.8,
            f"{name} v{version}: the CPU runner's validation accuracy is {accuracy:.3f}",
        )
        body = json.dumps(infer_body({"image": [bytes(frame["image"].iloc[0])]})).encode()
        url = f"{client.endpoint}/v2/models/{name}/infer"
        for label, gpus, precision, batch in SERVE_CONFIGS:
            device = "cuda:0" if gpus else "cpu"
            line = f"{LOADED}{name} v{version} on {device} ({precision})"
            before = replica_log_count(settings, line)
            client.deploy(
                {
                    "model": name,
                    "version": version,
                    "gpus_per_replica": gpus,
                    "precision": precision,
                    "cpus_per_replica": 1,
                    "batching": {"max_batch_size": batch, "max_wait_ms": 2.0 if batch > 1 else 0},
                    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
                }
            )
            report.check(
                f"placement: {label}",
                wait_for_log(settings, line, before),
                f"replica log says {line!r}",
            )
            compare(report, label, expected, client.predict(name, frame), TOLERANCE[precision])
            figures = closed_loop_in(state.cores["train"], url, body, args)
            report.figures[f"serve {label}"] = figures
            report.check(
                f"load: {label}",
                figures["errors"] == 0 and figures["req_per_s"] > 0,
                f"{figures['req_per_s']} req/s, p99 {figures['p99_ms']} ms, "
                f"{figures['errors']} errors",
            )
        placement = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv"],
            capture_output=True,
            text=True,
        )
        print(placement.stdout, flush=True)


def big_input(home: Path, frame: Any, rows: int) -> Path:
    """``rows`` rows: the validation split repeated, in four Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = home / "data" / "digits-big"
    folder.mkdir(parents=True, exist_ok=True)
    index = np.arange(rows) % len(frame)
    table = pa.Table.from_pandas(frame.iloc[index].reset_index(drop=True), preserve_index=False)
    for part, chunk in enumerate(np.array_split(np.arange(rows), 4)):
        pq.write_table(table.take(pa.array(chunk)), folder / f"part-{part}.parquet")
    return folder


def batch_phase(home: Path, args: argparse.Namespace, report: Report, trained: Any) -> None:
    import pandas as pd

    from tandem.registry import Registry
    from tandem.sdk import Client

    with cluster(home, "batch", report):
        client = Client()
        frame = validation_frame(home)
        expected = cpu_outputs(
            Registry.default(client.settings), trained.name, trained.version, frame
        )
        source = big_input(home, frame, args.rows)
        index = np.arange(args.rows) % len(frame)
        tiled = {key: value[index] for key, value in expected.items()}
        for device, gpus, actors in (("gpu", 1, 1), ("cpu", 0, 2)):
            spec = {
                "model": trained.name,
                "version": trained.version,
                "input": str(source),
                "output": str(home / f"scored-{device}"),
                "gpus_per_actor": gpus,
                "max_actors": actors,
            }
            with GpuSampler() as gpu:
                job = client.submit_batch(spec, wait=False)
                result = wait_or_show_logs(job)
            logs = job.logs()
            where = "cuda:0" if gpus else "cpu"
            report.check(
                f"placement: batch on {device}",
                f" on {where} (fp32)" in logs,
                f"actor log says {LOADED}… on {where}",
            )
            scored = pd.read_parquet(result.output).sort_values("row")
            got = {
                "label": scored["label"].to_numpy(),
                "probabilities": np.stack(scored["probabilities"].to_numpy()),
            }
            compare(
                report, f"batch on {device} (CPU-trained version)", tiled, got, TOLERANCE["fp32"]
            )
            report.figures[f"batch {device}"] = {
                "rows": result.rows,
                "rows_per_s": round(result.rows_per_s),
                "seconds": round(result.seconds, 1),
                "gpu_memory_max_mib": gpu.memory_mib,
            }
            print(f"batch {device}: {report.figures[f'batch {device}']}", flush=True)


# --- load ----------------------------------------------------------------------------


def closed_loop_in(cores: list[int], url: str, body: bytes, args: argparse.Namespace) -> dict:
    """Run the load generator as its own process on ``cores`` (an idle pool's)."""
    body_file = Path(os.environ["TANDEM_HOME"]) / "request.json"
    body_file.write_bytes(body)
    command = [
        sys.executable,
        __file__,
        "--load-url",
        url,
        "--body-file",
        str(body_file),
        "--seconds",
        str(args.seconds),
        "--concurrency",
        str(args.concurrency),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=args.seconds + 120,
        preexec_fn=lambda: os.sched_setaffinity(0, set(cores)),
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def closed_loop(url: str, body: bytes, seconds: float, concurrency: int) -> dict:
    """``concurrency`` keep-alive connections, each sending the next request when the last
    one answered, for ``seconds`` after one second of warm-up: req/s, p50 and p99."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    record_from, stop_at = start + 1.0, start + 1.0 + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while (sent := time.perf_counter()) < stop_at:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if status != 200:
                errors += 1
            elif sent >= record_from:
                latencies.append(time.perf_counter() - sent)
        writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    ms = np.asarray(latencies) * 1000
    return {
        "req_per_s": round(len(latencies) / seconds),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "errors": errors,
        "concurrency": concurrency,
    }


# --- summary -------------------------------------------------------------------------


def summary(report: Report) -> str:
    f = report.figures

    def cell(key: str, name: str) -> str:
        value = f.get(key, {}).get(name)
        return "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:g}"

    rows = [
        ("train samples/s (median of epochs 2+)", "train gpu", "train cpu", "samples_per_s"),
        (
            "serve req/s, batched (32)",
            "serve gpu fp32 batched",
            "serve cpu fp32 batched",
            "req_per_s",
        ),
        ("serve p99 ms, batched", "serve gpu fp32 batched", "serve cpu fp32 batched", "p99_ms"),
        (
            "serve req/s, unbatched",
            "serve gpu fp32 unbatched",
            "serve cpu fp32 unbatched",
            "req_per_s",
        ),
        (
            "serve p99 ms, unbatched",
            "serve gpu fp32 unbatched",
            "serve cpu fp32 unbatched",
            "p99_ms",
        ),
        ("serve req/s, batched, bf16", "serve gpu bf16 batched", "", "req_per_s"),
        ("serve req/s, batched, fp16", "serve gpu fp16 batched", "", "req_per_s"),
        ("batch rows/s", "batch gpu", "batch cpu", "rows_per_s"),
    ]
    lines = [f"GPU: {report.gpu}", "", "| figure | GPU | CPU |", "| --- | ---: | ---: |"]
    for label, gpu_key, cpu_key, name in rows:
        lines.append(f"| {label} | {cell(gpu_key, name)} | {cell(cpu_key, name)} |")
    passed = len(report.checks) - len(report.failed())
    lines += ["", f"checks: {passed}/{len(report.checks)} passed"]
    lines += [f"- {'ok' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}" for c in report.checks]
    return "\n".join(lines)


def save(report: Report, out: Path, home: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"gpu": report.gpu, "checks": report.checks, "figures": report.figures}
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=2))
    (out / "gpu_check.md").write_text(summary(report) + "\n")
    if report.failed():
        from tandem.cluster.local import ray_temp_dir
        from tandem.settings import Settings

        # The node logs and the last cluster's Ray logs, small files only (what comes back
        # from a device run is limited).
        folders = {"nodes": home / "logs", "ray": ray_temp_dir(Settings.from_env())}
        with tarfile.open(out / "ray_logs.tar.gz", "w:gz") as archive:
            for name, folder in folders.items():
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and path.stat().st_size < 1024**2:
                        archive.add(path, arcname=f"{name}/{path.relative_to(folder)}")


def run_check(args: argparse.Namespace) -> int:
    report = Report(gpu=require_gpu())
    if not os.environ.get("TANDEM_HOME"):
        raise SystemExit("gpu_check: set TANDEM_HOME to a fresh folder (gpu_check.sh does)")
    home = Path(os.environ["TANDEM_HOME"])
    print(f"gpu_check on {report.gpu}, TANDEM_HOME={home}", flush=True)
    subprocess.run(["tandem", "data", "digits"], check=True, timeout=300)
    trained: dict[str, Any] = {}
    phases = [
        ("train", lambda: train_phase(home, args, report, trained)),
        ("serve", lambda: serve_phase(home, args, report, trained["gpu"])),
        ("batch", lambda: batch_phase(home, args, report, trained["cpu"])),
    ]
    for name, phase in phases:
        try:
            phase()
        except Exception as error:  # one phase failing must not hide the others' figures
            traceback.print_exc()
            report.check(f"{name} phase ran", False, f"{type(error).__name__}: {error}")
    text = summary(report)
    print("\n" + text, flush=True)
    save(report, Path(args.out), home)
    failed = report.failed()
    print(f"\nGPU CHECK {'FAILED: ' + ', '.join(failed) if failed else 'PASSED'}", flush=True)
    return 1 if failed else 0


def train_phase(home: Path, args: argparse.Namespace, report: Report, trained: dict) -> None:
    from tandem.sdk import Client

    with cluster(home, "train", report):
        client = Client()
        trained["cpu"] = train(client, report, "cpu", args.epochs)
        trained["gpu"] = train(client, report, "gpu", args.epochs)
    gpu_memory = report.figures["train gpu"]["gpu_memory_max_mib"]
    report.check(
        "train with use_gpu used the GPU",
        gpu_memory > report.figures["train cpu"]["gpu_memory_max_mib"] + 100,
        f"nvidia-smi saw up to {gpu_memory:.0f} MiB in use during the GPU job "
        f"({report.figures['train cpu']['gpu_memory_max_mib']:.0f} MiB during the CPU job)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu-check")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="load per serve config")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=50_000, help="rows batch scoring scores")
    parser.add_argument("--load-url", help=argparse.SUPPRESS)  # the load generator's own mode
    parser.add_argument("--body-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_url:
        body = Path(args.body_file).read_bytes()
        result = asyncio.run(closed_loop(args.load_url, body, args.seconds, args.concurrency))
        print(json.dumps(result))
        return 0
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
