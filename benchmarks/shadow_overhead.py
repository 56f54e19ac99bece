"""Does mirroring live traffic to a shadow version change the live answers or their tail?

    .venv/bin/python benchmarks/shadow_overhead.py [--rate 400] [--seconds 15] [--repeats 3]

On a private embedded cluster the digits MLP (v1) is served by one replica on the serve
pool's core; v2, a copy of v1, is the shadow (so it costs as much as the live version,
and its label agreement must be 1.000). First every
validation-sized probe is sent with and without the shadow and the response bodies are
compared byte for byte. Then an open-loop generator (benchmarks/_openloop.py: constant
rate, latency from each request's due time, pinned to the train pool's cores) offers
``--rate`` req/s with no shadow and with each of ``--shares`` mirrored, in turn,
``--repeats`` times; it prints the medians, the p99 ratio (shadow / none) and what the replicas
recorded about the shadow (requests compared, label agreement, dropped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from isolation import open_loop
from serve_http import body_for, deploy_digits, register_models

from tandem.cluster import local
from tandem.registry import Registry
from tandem.serve import control
from tandem.serve.routing import ShadowTarget
from tandem.settings import Settings

PROBES = 50


def register_shadow(settings: Settings) -> int:
    """v2 of ``digits``: a copy of v1 (same weights), so the shadow costs what the live
    version costs and the recorded label agreement must be exactly 1."""
    registry = Registry.default(settings)
    manifest, weights = registry.load_weights("digits", 1)
    return registry.register(manifest, weights).version


def probe_bodies(url: str, x: np.ndarray) -> list[bytes]:
    with httpx.Client(timeout=30) as client:
        return [client.post(url, content=body_for(x[i:], 1)).content for i in range(PROBES)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--shares", default="25,100", help="shadow shares to measure, percent")
    args = parser.parse_args()
    shares = [int(share) for share in args.shares.split(",")]
    scenarios = {"no shadow": 0} | {f"shadow {share}%": share for share in shares}
    runs: dict[str, list[dict]] = {name: [] for name in scenarios}
    with private_cluster(args.port_base) as settings:
        state = local.ClusterState.read(settings)
        assert state is not None
        x = register_models(settings)
        shadow = register_shadow(settings)
        deploy_digits(settings)
        url = f"http://127.0.0.1:{state.serve_http_port}/v2/models/digits/infer"
        cores = state.cores["train"]
        plain = probe_bodies(url, x)
        control.set_traffic(
            "digits", settings, canary=None, shadow=ShadowTarget(version=shadow, share=100)
        )
        mirrored = probe_bodies(url, x)
        same = sum(a == b for a, b in zip(plain, mirrored, strict=True))
        print(f"responses identical with and without the shadow: {same}/{PROBES}", flush=True)
        body = body_for(x, 1)
        open_loop(url, body, args.rate, 5, cores)  # warm-up
        for repeat in range(args.repeats):
            for name, share in scenarios.items():
                target = ShadowTarget(version=shadow, share=share) if share else None
                control.set_traffic("digits", settings, canary=None, shadow=target)
                # The change reloads HAProxy: idle connections opened in the next moment
                # are closed under a client that does not retry (real clients do, this
                # generator counts them as errors), so measure from fresh connections.
                open_loop(url, body, args.rate, 2, cores)
                since = time.time()
                result = open_loop(url, body, args.rate, args.seconds, cores)
                runs[name].append(result)
                line = (
                    f"repeat {repeat + 1} {name:<12} p50 {result['p50_ms']:6.2f} ms  "
                    f"p99 {result['p99_ms']:6.2f} ms  max {result['max_ms']:6.1f} ms  "
                    f"errors {result['errors']}"
                )
                if target is not None:
                    time.sleep(2)  # replicas flush their evidence about once a second
                    found = control.rollout_evidence("digits", settings, since).shadows.get(shadow)
                    if found is not None:
                        line += (
                            f"  shadow: compared {found.compared}, agreement "
                            f"{found.agreement:.3f}, dropped {found.dropped}, "
                            f"p99 {found.p99_ms:.2f} ms"
                        )
                print(line, flush=True)
    medians = {
        name: {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p99_ms", "max_ms")}
        for name, results in runs.items()
    }
    print(
        f"\noffered {args.rate:,.0f} req/s, {args.seconds:.0f} s per run, medians of {args.repeats}"
    )
    for name, row in medians.items():
        print(
            f"{name:<12} p50 {row['p50_ms']:6.2f}  p99 {row['p99_ms']:6.2f}  "
            f"max {row['max_ms']:6.1f} ms"
        )
    for name in list(scenarios)[1:]:
        ratio = medians[name]["p99_ms"] / medians["no shadow"]["p99_ms"]
        print(f"p99 {name} / no shadow = {ratio:.2f}x")


if __name__ == "__main__":
    main()
