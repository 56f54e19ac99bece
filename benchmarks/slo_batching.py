"""SLO-aware batching against fixed settings: the highest rate each holds p99 under a target.

    .venv/bin/python benchmarks/slo_batching.py [--target-ms 25] [--seconds 8] [--repeats 2]

On a private embedded cluster one replica (one serve core) serves ``heavy``, an MLP
wide enough that a forward pass costs milliseconds and batching pays (its weights
are read once per batch, not once per request). For each batching setting (the
default fixed 32 / 2 ms, a grid of fixed sizes and waits, and ``target_p99_ms``)
an open-loop generator (benchmarks/_openloop.py: constant rate, latency from each
request's due time, pinned to the train pool's cores) offers a rising sweep of
rates, ``--seconds`` each, the median p99 of ``--repeats`` runs per rate, until p99
exceeds the target (or requests fail). A setting's capacity is the highest rate it
held. Prints every run, then each setting's capacity and the ratios adaptive / best
fixed and adaptive / default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from isolation import open_loop
from serve_http import body_for, manifest

from tandem.cluster import local
from tandem.serve import control
from tandem.settings import Settings

MODEL = "heavy"
HIDDEN = [2048, 2048, 2048]
RATES = [50, 75, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 800, 1000, 1200, 1500, 2000]
DEFAULT = {"max_batch_size": 32, "max_wait_ms": 2}
GRID = [{"max_batch_size": size, "max_wait_ms": wait} for size in (1, 8, 32, 64) for wait in (0, 5)]


def register_heavy(settings: Settings) -> np.ndarray:
    import torch
    from sklearn.datasets import load_digits

    from tandem.models import build_model
    from tandem.registry.store import Registry

    x = load_digits().data.astype(np.float32)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1
    torch.manual_seed(0)
    stored = manifest(MODEL, HIDDEN, x, mean, std)
    weights = build_model("tandem.models:mlp", {"hidden": HIDDEN}, stored.inputs, 10)
    registry = Registry.default(settings)
    registry.register(stored, weights.state_dict())
    registry.set_alias(MODEL, "production", 1)
    return x


def deploy(settings: Settings, batching: dict[str, float]) -> None:
    control.deploy(
        {
            "model": MODEL,
            "batching": batching,
            "max_ongoing_requests": 128,
            "max_queued_requests": 1024,
            "cpus_per_replica": 1,
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        },
        settings,
    )


def label(batching: Mapping[str, float]) -> str:
    if "target_p99_ms" in batching:
        return f"adaptive p99≤{batching['target_p99_ms']:g} ms (≤{batching['max_batch_size']:g})"
    return f"fixed {batching['max_batch_size']:g} / {batching['max_wait_ms']:g} ms"


def capacity(url: str, body: str, cores: list[int], args: argparse.Namespace, name: str) -> float:
    """The highest rate whose median p99 stayed under the target (0: not even the lowest)."""
    open_loop(url, body, RATES[0], 3, cores)  # warm-up (and the adaptive cap's first windows)
    held = 0.0
    for rate in RATES:
        runs = [open_loop(url, body, rate, args.seconds, cores) for _ in range(args.repeats)]
        p99 = statistics.median(r["p99_ms"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        print(
            f"{name:<34} {rate:6.0f} req/s  p50 {statistics.median(r['p50_ms'] for r in runs):7.2f}"
            f"  p99 {p99:7.2f} ms  errors {errors}",
            flush=True,
        )
        if p99 > args.target_ms or errors:
            break
        held = rate
    return held


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target-ms", type=float, default=25)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--no-grid", action="store_true", help="default and adaptive only")
    args = parser.parse_args()
    adaptive = {"target_p99_ms": args.target_ms, "max_batch_size": 64, "max_wait_ms": 10}
    settings_list = [DEFAULT, adaptive] + ([] if args.no_grid else GRID)
    results: dict[str, float] = {}
    with private_cluster(args.port_base) as settings:
        state = local.ClusterState.read(settings)
        assert state is not None
        x = register_heavy(settings)
        body = body_for(x, 1)
        url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/{MODEL}/infer"
        for batching in settings_list:
            deploy(settings, batching)
            name = label(batching)
            results[name] = capacity(url, body, state.cores["train"], args, name)
    print(f"\ncapacity at p99 ≤ {args.target_ms:g} ms (one replica, one core, {HIDDEN} MLP):")
    for name, rate in results.items():
        print(f"  {name:<34} {rate:6.0f} req/s")
    default, best_adaptive = results[label(DEFAULT)], results[label(adaptive)]
    fixed = {n: r for n, r in results.items() if not n.startswith("adaptive")}
    best_name = max(fixed, key=lambda n: fixed[n])
    print(f"best fixed: {best_name} ({fixed[best_name]:.0f} req/s)")
    if fixed[best_name]:
        print(f"adaptive / best fixed = {best_adaptive / fixed[best_name]:.2f}x")
    if default:
        print(f"adaptive / default    = {best_adaptive / default:.2f}x")


if __name__ == "__main__":
    main()
