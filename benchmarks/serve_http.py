"""Tandem's HTTP endpoint vs. the same model in plain processes and in KServe, closed loop.

Targets, all on the same cores (the serve pool's): ``plain`` (Tandem's own request code
in one uvicorn process), ``limit`` (a minimal Starlette app: v2 parse, forward pass,
v2 answer; benchmarks/_minimal_server.py), ``kserve`` (KServe's Python model server,
its own venv, built on first use; ``--no-kserve`` skips it) and ``tandem`` (the Serve
app). The load generator is ``wrk``, a separate process pinned to other cores, at
equal concurrency, over loopback, for a bounded time, targets interleaved. Reports
req/s, p50 and p99 per target and Tandem's ratios to each (medians over ``--runs``),
then batched vs. unbatched serving of a compute-heavy MLP.

    .venv/bin/python benchmarks/serve_http.py --runs 3 --seconds 10 --out bench.json

Starts (and stops) its own embedded cluster under a temporary TANDEM_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
MINIMAL_FACTORY = "_minimal_server:app_from_env"
"""The limit: a minimal Starlette app (benchmarks/_minimal_server.py)."""
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local file = assert(io.open({body_file}, "rb"))
wrk.body = file:read("*a")
file:close()
"""


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(
    url: str,
    body: str | bytes,
    connections: int,
    seconds: int,
    cores: list[int],
    headers: dict[str, str] | None = None,
) -> Run:
    """One bounded wrk run from a separate process pinned to ``cores``. ``headers`` add to
    (or replace) the JSON content type; the body travels in a file, so it may be binary."""
    extra = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()]
    with tempfile.TemporaryDirectory(prefix="wrk-") as folder:
        body_file, script = Path(folder, "body"), Path(folder, "request.lua")
        body_file.write_bytes(body.encode() if isinstance(body, str) else body)
        script.write_text(
            WRK_SCRIPT.format(headers="\n".join(extra), body_file=json.dumps(str(body_file)))
        )
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s"]
        out = subprocess.run(
            [*command, str(script), url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            preexec_fn=lambda: os.sched_setaffinity(0, set(cores)),
            check=True,
        ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        return float(match.group(1)) * UNITS_MS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    assert rps, out
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Run(float(rps.group(1)), latency("50%"), latency("99%"), errors)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
    )


def manifest(name: str, hidden: list[int], x: np.ndarray, mean: np.ndarray, std: np.ndarray):  # type: ignore[no-untyped-def]
    from tandem.registry import TargetSchema, external_manifest, tabular_input

    features = [f"pixel_{i}" for i in range(x.shape[1])]
    return external_manifest(
        name,
        "tandem.models:mlp",
        {"hidden": hidden},
        [tabular_input(features, mean.tolist(), std.tolist(), x[0].tolist())],
        TargetSchema(classes=list(range(10))),
        run_name="benchmark",
    )


def register_models(settings) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``digits`` (small MLP, trained briefly) and ``heavy-*`` (wide MLP, untrained)."""
    from sklearn.datasets import load_digits

    from tandem.models import build_model
    from tandem.registry.store import Registry

    x = load_digits().data.astype(np.float32)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1
    registry = Registry.default(settings)
    torch.manual_seed(0)
    for name, hidden in [
        ("digits", [64]),
        ("heavy-batched", [1024] * 4),
        ("heavy-unbatched", [1024] * 4),
    ]:
        stored = manifest(name, hidden, x, mean, std)
        weights = build_model("tandem.models:mlp", {"hidden": hidden}, stored.inputs, 10)
        registry.register(stored, weights.state_dict())
        registry.set_alias(name, "production", 1)
    return x


@contextmanager
def plain_server(  # type: ignore[no-untyped-def]
    settings, cores: list[int], factory: str = "tandem.serve.plain:from_env"
) -> Iterator[str]:
    """One uvicorn process serving ``digits`` from ``factory`` (default: the same model
    service as a replica; ``_minimal_server:app_from_env``: a minimal app, the limit),
    pinned to the serve cores."""
    port = free_port()
    env = {**os.environ, "TANDEM_HOME": str(settings.home), "TANDEM_PLAIN_MODEL": "digits"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            f"--app-dir={Path(__file__).resolve().parent}",
            "--host",
            "127.0.0.1",
            f"--port={port}",
            "--no-access-log",
            "--log-level=warning",
        ],
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, set(cores)),
    )
    url = f"http://127.0.0.1:{port}/v2/models/digits"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the plain server did not come up within 60s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def body_for(x: np.ndarray, rows: int) -> str:
    data = x[:rows]
    tensor = {
        "name": "input",
        "shape": list(data.shape),
        "datatype": "FP32",
        "data": data.reshape(-1).tolist(),
    }
    return json.dumps({"inputs": [tensor]})


def deploy_digits(settings) -> None:  # type: ignore[no-untyped-def]
    """One replica of the digits MLP on one serve core, batching 16 / 1 ms."""
    from tandem.serve import control

    control.deploy(
        {
            "model": "digits",
            "batching": {"max_batch_size": 16, "max_wait_ms": 1},
            "max_ongoing_requests": 64,
            "cpus_per_replica": 1,
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        settings,
    )


def compare(args: argparse.Namespace, settings, state, x: np.ndarray) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Closed loop against every target on the serve cores: ``plain`` (Tandem's request code
    in one uvicorn process), ``limit`` (a minimal app: v2 parse, forward pass, v2 answer),
    ``kserve`` (KServe's model server, unless ``--no-kserve``) and ``tandem`` (Serve)."""
    from _kserve_peer import ensure_venv, export_model, kserve_server

    from tandem.serve import control

    load_cores, serve_cores = state.cores["train"], state.cores["serve"]
    deploy_digits(settings)
    body = body_for(x, 1)
    urls: dict[str, str] = {}
    with ExitStack() as servers:
        urls["plain"] = servers.enter_context(plain_server(settings, serve_cores)) + "/infer"
        limit = servers.enter_context(plain_server(settings, serve_cores, MINIMAL_FACTORY))
        urls["limit"] = limit + "/infer"
        if not args.no_kserve:
            folder = Path(servers.enter_context(tempfile.TemporaryDirectory()))
            model = export_model(settings.home, "digits", folder / "digits.pt")
            peer = kserve_server(ensure_venv(), model, "digits", free_port(), serve_cores)
            urls["kserve"] = servers.enter_context(peer)
        urls["tandem"] = f"http://127.0.0.1:{state.serve_http_port}/v2/models/digits/infer"
        for url in urls.values():  # warm every target up
            wrk(url, body, args.connections, 2, load_cores)
        runs: dict[str, list[Run]] = {target: [] for target in urls}
        for _ in range(args.runs):  # interleaved, so drift hits every target alike
            for target, url in urls.items():
                runs[target].append(wrk(url, body, args.connections, args.seconds, load_cores))
    control.undeploy("digits", settings)
    medians = {target: median_run(target_runs) for target, target_runs in runs.items()}
    tandem = medians["tandem"]
    return {
        **{target: asdict(run) for target, run in medians.items()},
        **{
            f"tandem_vs_{target}": {
                "throughput_ratio": tandem.rps / run.rps,
                "p99_ratio": tandem.p99_ms / run.p99_ms,
            }
            for target, run in medians.items()
            if target != "tandem"
        },
        "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
    }


def batching(args: argparse.Namespace, settings, state, x: np.ndarray) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from tandem.serve import control

    results: dict[str, object] = {}
    for name, size, wait in (("heavy-unbatched", 1, 0), ("heavy-batched", 32, 5)):
        control.deploy(
            {
                "model": name,
                "batching": {"max_batch_size": size, "max_wait_ms": wait},
                "max_ongoing_requests": 64,
                "cpus_per_replica": 1,
                "autoscaling": {"min_replicas": 1, "max_replicas": 1},
            },
            settings,
        )
        url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/{name}/infer"
        body = body_for(x, 1)
        wrk(url, body, args.connections, 2, state.cores["train"])
        runs = [
            wrk(url, body, args.connections, args.seconds, state.cores["train"])
            for _ in range(args.runs)
        ]
        results[name] = asdict(median_run(runs))
        control.undeploy(name, settings)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip-batching", action="store_true")
    parser.add_argument("--no-kserve", action="store_true", help="skip the KServe peer")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    home = Path(tempfile.mkdtemp(prefix="tandem-bench-"))
    os.environ.update({"TANDEM_HOME": str(home), "TANDEM_CLUSTER_FILE": str(REPO / "cluster.yaml")})
    os.environ.setdefault("TANDEM_PORT_BASE", "27000")
    import ray

    from tandem.cluster import local, session
    from tandem.settings import Settings

    settings = Settings.from_env()
    try:
        state = session.up(settings)
        session.connect(settings)
        x = register_models(settings)
        report: dict[str, object] = {
            "connections": args.connections,
            "seconds": args.seconds,
            "runs": args.runs,
            "cores": state.cores,
        }
        report["digits"] = compare(args, settings, state, x)
        if not args.skip_batching:
            report["heavy"] = batching(args, settings, state, x)
    finally:
        ray.shutdown()
        local.stop(settings)
        shutil.rmtree(home, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
