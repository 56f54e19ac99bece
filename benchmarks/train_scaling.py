"""DDP scaling: Tandem training samples/s with 1 vs 2 workers (one core each) on a
compute-bound MLP, the same Parquet path and per-worker batch size.

    .venv/bin/python benchmarks/train_scaling.py [--rows 30000] [--epochs 3] [--repeats 3]

The train pool needs a core per worker. On a machine whose pinned layout gives the
train pool fewer than two cores (2 cores: serve owns one, the rest share the other),
the cluster is started with pools disabled so the two workers get a core each; the
script says which layout it used. Prints samples/s (median over repeats of the median
steady epoch, the first excluded as warm-up) and the ratio 2 workers / 1 worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import REPO, private_cluster
from train_ingest import spec_for, tandem_path, write_dataset

from tandem.cluster import session
from tandem.settings import Settings

HIDDEN = [1024, 1024, 1024]
# Per worker. DDP all-reduces every gradient each step (8.7 MB here): the batch
# must be large enough that the forward/backward pass outweighs that exchange.
BATCH = 2048


def train_pool_cores(pinned: bool) -> int:
    os.environ.setdefault("TANDEM_CLUSTER_FILE", str(REPO / "cluster.yaml"))
    layout = session.embedded_layout(Settings.from_env(), pinned=pinned)
    return next(len(node.cores) for node in layout.nodes if node.name == "train")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=BATCH, help="per worker")
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    pinned = train_pool_cores(pinned=True) >= 2
    rates: dict[int, list[float]] = {1: [], 2: []}
    waits: dict[int, list[float]] = {1: [], 2: []}
    with (
        tempfile.TemporaryDirectory() as folder,
        private_cluster(args.port_base, pinned=pinned) as settings,
    ):
        path = write_dataset(Path(folder), args.rows)
        for repeat in range(args.repeats):
            for workers in (1, 2):
                name = f"bench-scaling-{workers}"
                spec = spec_for(path, args.epochs, HIDDEN, workers, name, args.batch)
                rate, wait = tandem_path(spec, settings.storage_uri)
                rates[workers].append(rate)
                waits[workers].append(wait)
                print(
                    f"repeat {repeat + 1}: {workers} worker(s) {rate:,.0f} samples/s "
                    f"(data-wait {100 * wait:.1f}%)",
                    flush=True,
                )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"\nrows={args.rows} epochs={args.epochs} repeats={args.repeats} model=mlp{HIDDEN} "
        f"batch={args.batch}/worker "
        f"layout={'pinned pools' if pinned else 'pools disabled (train pool < 2 cores)'}"
    )
    for workers, rate in ((1, one), (2, two)):
        wait = 100 * statistics.median(waits[workers])
        print(f"{workers} worker(s): {rate:>10,.0f} samples/s  data-wait {wait:.1f}%")
    print(f"scaling 2/1 = {two / one:.2f}x")


if __name__ == "__main__":
    main()
