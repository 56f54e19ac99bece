"""The served tail, open loop: Tandem against the limit (a minimal app) and the peer
(KServe's model server), rate by rate.

    .venv/bin/python benchmarks/serve_tail.py [--seconds 60] [--rates 500,1000,...]

On a private embedded cluster the digits MLP is served by one replica on the serve
pool's core (batching 16 / 1 ms, as serve_http.py deploys it); the limit is one
uvicorn process on the same core running a minimal Starlette app (v2 JSON parse,
the same forward pass, v2 JSON answer: benchmarks/_minimal_server.py); the peer is
KServe's Python model server (0.21, one worker, its own venv ``.venv-kserve`` that
the first run builds, ~1 min; ``--no-kserve`` skips it) with the same weights
(benchmarks/_kserve_peer.py). An
open-loop generator (constant rate, latency from each request's due time, pinned
to the train pool's core) offers each rate for
``--seconds`` to each target in turn, rising until a target misses the SLO. Per
rate: p50 / p99 / p99.9 / max, requests over 100 ms, failures. A target's SLO
capacity is the highest rate it held with p99 ≤ ``--p99-ms``, no request over
100 ms and none failed. Prints the table, every capacity and Tandem's ratios.

The generator is benchmarks/_openloop.mjs (Node.js, same rules and output) where
``node`` is installed, else the Python one, which falls behind its own schedule
above ~1,200 req/s here (``--generator python`` picks it): a rate the limit misses
with the generator's achieved rate below the offered one is the generator's
limit, not the server's; the table shows both.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from _kserve_peer import ensure_venv, export_model, kserve_server
from isolation import open_loop
from serve_http import (
    MINIMAL_FACTORY,
    body_for,
    deploy_digits,
    free_port,
    plain_server,
    register_models,
)

from tandem.cluster import local

DEFAULT_RATES = "500,1000,1500,2000,2500,3000,3500,4000"


def held(result: dict, p99_ms: float) -> bool:
    return result["p99_ms"] <= p99_ms and result["over_100ms"] == 0 and result["errors"] == 0


def row(target: str, result: dict) -> str:
    return (
        f"{target:<8} {result['rate']:6.0f} req/s (achieved {result['achieved_rps']:6.0f})  "
        f"p50 {result['p50_ms']:6.2f}  p99 {result['p99_ms']:7.2f}  "
        f"p99.9 {result['p999_ms']:7.2f}  max {result['max_ms']:7.1f} ms  "
        f">100ms {result['over_100ms']:4d}  failed {result['errors']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rates", default=DEFAULT_RATES)
    parser.add_argument("--p99-ms", type=float, default=20)
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--no-kserve", action="store_true", help="skip the KServe peer")
    parser.add_argument(
        "--generator",
        choices=("node", "python"),
        default="node" if shutil.which("node") else "python",
        help="open-loop generator: _openloop.mjs (Node.js, the default where node is "
        "installed: apt-get install nodejs) or _openloop.py",
    )
    args = parser.parse_args()
    node = args.generator == "node"
    rates = [float(rate) for rate in args.rates.split(",")]
    python = None if args.no_kserve else ensure_venv()
    capacity: dict[str, float] = {}
    with private_cluster(args.port_base) as settings, ExitStack() as servers:
        state = local.ClusterState.read(settings)
        assert state is not None
        x = register_models(settings)
        deploy_digits(settings)
        body = body_for(x, 1)
        cores, serve_cores = state.cores["train"], state.cores["serve"]
        limit = servers.enter_context(plain_server(settings, serve_cores, MINIMAL_FACTORY))
        urls = {"limit": f"{limit}/infer"}
        if python is not None:
            folder = Path(servers.enter_context(tempfile.TemporaryDirectory()))
            model = export_model(settings.home, "digits", folder / "digits.pt")
            peer = kserve_server(python, model, "digits", free_port(), serve_cores)
            urls["kserve"] = servers.enter_context(peer)
        urls["tandem"] = f"http://127.0.0.1:{state.serve_http_port}/v2/models/digits/infer"
        capacity = dict.fromkeys(urls, 0.0)
        for url in urls.values():
            open_loop(url, body, rates[0], 5, cores, node)  # warm-up
        going = set(urls)
        for rate in rates:
            for target in sorted(going):
                result = open_loop(urls[target], body, rate, args.seconds, cores, node)
                print(row(target, result), flush=True)
                if held(result, args.p99_ms):
                    capacity[target] = rate
                else:
                    going.discard(target)
            if not going:
                break
    print(
        f"\nSLO capacity (p99 ≤ {args.p99_ms:g} ms, none over 100 ms, none failed, "
        f"{args.seconds:g} s per rate):"
    )
    for target, rate in capacity.items():
        print(f"  {target:<8} {rate:6.0f} req/s")
    for other in ("limit", "kserve"):
        if capacity.get(other):
            print(f"tandem / {other} = {capacity['tandem'] / capacity[other]:.2f}x")


if __name__ == "__main__":
    main()
