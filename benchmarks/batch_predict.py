"""Batch inference: Tandem's Ray Data actor pool vs. a plain single-process loop.

    .venv/bin/python benchmarks/batch_predict.py [--rows 200000] [--repeats 3]

On a private embedded cluster, over the same Parquet files (4 files, 64 float
features) and the same registered MLP, both variants load the version with
``Registry.load_weights`` and score with the same ``ModelRunner``, then write
one Parquet file of row index + label + probabilities:
  (a) tandem – ``tandem.batch.pipeline.run``: Ray Data read in the batch pool,
      ``map_batches`` in an actor pool (batch pool), ordered write by the driver
  (b) plain  – one process pinned to the batch pool's cores: pyarrow
      ``iter_batches`` → ``ModelRunner.predict`` → ``ParquetWriter``
Both are timed end to end (actor start-up included for Tandem). Prints rows/s
per run, medians over repeats and the ratio a/b.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster

from tandem.batch.config import BatchPredictSpec
from tandem.batch.output import ScoredParquet
from tandem.batch.pipeline import run as tandem_run
from tandem.batch.transform import RowIndex, Scorer
from tandem.cluster.local import ClusterState
from tandem.models import ModelRunner, build_model
from tandem.registry import Manifest, Registry, TargetSchema, external_manifest, tabular_input
from tandem.settings import Settings

FEATURES = [f"f{i}" for i in range(64)]
HIDDEN = [256, 256]
MODEL = "bench-batch"
BATCH = 4096


def write_inputs(folder: Path, rows: int) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    folder.mkdir(parents=True)
    for part, index in enumerate(np.array_split(np.arange(rows), 4)):
        frame = pd.DataFrame(x[index], columns=FEATURES)
        frame.to_parquet(folder / f"part-{part}.parquet", index=False, row_group_size=16384)
    return folder, x


def register(settings: Settings, x: np.ndarray) -> Manifest:
    torch.manual_seed(0)
    inputs = [tabular_input(FEATURES, x.mean(0).tolist(), x.std(0).tolist(), x[0].tolist())]
    model = build_model("tandem.models:mlp", {"hidden": HIDDEN}, inputs, 10)
    manifest = external_manifest(
        MODEL,
        "tandem.models:mlp",
        {"hidden": HIDDEN},
        inputs,
        TargetSchema(classes=list(range(10))),
        run_name="bench",
    )
    return Registry.default(settings).register(manifest, model.state_dict())


def plain_loop(settings: Settings, inputs: Path, output: Path, cores: tuple[int, ...]) -> float:
    """rows/s of the single-process loop, pinned to ``cores`` (the batch pool's)."""
    saved, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    try:
        started = time.perf_counter()
        runner = ModelRunner(*Registry.default(settings).load_weights(MODEL, 1))
        scorer, index = Scorer(runner, id_column=None), RowIndex("row")
        with ScoredParquet(str(output)) as writer:
            for path in sorted(inputs.glob("*.parquet")):
                for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=FEATURES):
                    columns = {name: batch.column(name).to_numpy() for name in FEATURES}
                    writer.write(index(scorer(columns)))
        return writer.rows / (time.perf_counter() - started)
    finally:
        os.sched_setaffinity(0, saved)
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--port-base", type=int, default=29000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp,
        private_cluster(args.port_base) as settings,
    ):
        inputs, x = write_inputs(Path(tmp) / "in", args.rows)
        register(settings, x)
        state = ClusterState.read(settings)
        assert state is not None
        cores = tuple(state.cores["batch"])
        print(f"{args.rows:,} rows, batch pool cores {list(cores)}, {os.cpu_count()} cores total")
        tandem, plain = [], []
        for repeat in range(args.repeats):
            spec = BatchPredictSpec(
                model=MODEL,
                version=1,
                input=str(inputs),
                output=f"{tmp}/tandem-{repeat}",
                batch_size=BATCH,
                max_actors=args.actors,
            )
            tandem.append(tandem_run(spec, settings).rows_per_s)
            plain.append(plain_loop(settings, inputs, Path(tmp) / f"plain-{repeat}", cores))
            print(
                f"run {repeat + 1}: tandem {tandem[-1]:,.0f} rows/s, plain {plain[-1]:,.0f} rows/s"
            )
        a, b = statistics.median(tandem), statistics.median(plain)
        print(f"median: tandem {a:,.0f} rows/s, plain loop {b:,.0f} rows/s, ratio a/b {a / b:.2f}")


if __name__ == "__main__":
    main()
