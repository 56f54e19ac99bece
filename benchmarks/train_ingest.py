"""Training ingest: Tandem's Parquet path vs. the same loop over in-memory tensors.

    .venv/bin/python benchmarks/train_ingest.py [--rows 100000] [--epochs 4] [--repeats 3]

On a private embedded cluster, one worker in the train pool (one core here),
the same MLP, optimiser and batch size in every variant:
  (a) tandem  – Parquet → Ray Data (train pool) → TorchTrainer, iter_torch_batches
  (b) memory  – the same step loop over tensors already in memory (the limit)
  (c) naive   – read the whole Parquet file with pandas, then the memory loop
Prints samples/s (median over repeats, first epoch excluded as warm-up),
Tandem's data-wait fraction, and the ratios a/b and c/b.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster

from tandem.cluster import pool_options
from tandem.data import ingest
from tandem.specs import TrainJobSpec
from tandem.train import trainer
from tandem.train.runs import RunStore

FEATURES = [f"f{i}" for i in range(64)]
HIDDEN = [256, 256]
BATCH = 256


def write_dataset(folder: Path, rows: int) -> Path:
    """Learnable synthetic data: labels from a random linear teacher."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    labels = (x @ rng.normal(size=(len(FEATURES), 10))).argmax(axis=1)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["label"] = labels.astype(np.int64)
    path = folder / "synthetic.parquet"
    frame.to_parquet(path, index=False, row_group_size=8192)
    return path


def spec_for(
    path: Path,
    epochs: int,
    hidden: list[int] = HIDDEN,
    workers: int = 1,
    name: str = "bench-ingest",
    batch: int = BATCH,
) -> TrainJobSpec:
    return TrainJobSpec.model_validate(
        {
            "name": name,
            "dataset": {
                "train": str(path),
                "validation": str(path),
                "features": FEATURES,
                "label": "label",
            },
            "model": {"factory": "tandem.models:mlp", "kwargs": {"hidden": hidden}},
            "train": {"epochs": epochs, "batch_size": batch, "lr": 0.001, "seed": 0},
            "scaling": {"num_workers": workers, "cpus_per_worker": 1},
            "checkpoint": {"every_epochs": 1, "keep": epochs},
        }
    )


def tandem_path(spec: TrainJobSpec, storage: str) -> tuple[float, float]:
    checked = ingest.check(spec.dataset, spec.task)
    data = ingest.prepare(spec.dataset, spec.task, checked, seed=0)
    runs = RunStore.open(storage, spec.name)
    result = trainer.fit(spec, data, runs, runs.new_run_id(spec.name))
    steady = result.history[1:] or result.history
    return (
        statistics.median(m["samples_per_s"] for m in steady),
        statistics.median(m["data_wait_fraction"] for m in steady),
    )


@ray.remote
def memory_loop(path: str, epochs: int, count_read: bool) -> float:
    """samples/s of the plain loop over tensors in memory.

    ``count_read``: the naive baseline, whose rate counts reading the whole file
    before training; otherwise the median steady-state epoch (first excluded).
    """
    from tandem.models import mlp

    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    frame = pd.read_parquet(path)
    x = torch.from_numpy(frame[FEATURES].to_numpy(np.float32))
    x = (x - x.mean(0)) / x.std(0)
    y = torch.from_numpy(frame["label"].to_numpy())
    model = mlp(len(FEATURES), 10, hidden=HIDDEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    criterion = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            index = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x[index]), y[index]).backward()
            optimizer.step()
        rates.append(len(x) / (time.perf_counter() - epoch_start))
    if count_read:
        return epochs * len(x) / (time.perf_counter() - started)
    return statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, private_cluster(args.port_base) as settings:
        path = write_dataset(Path(folder), args.rows)
        spec = spec_for(path, args.epochs)
        results: dict[str, list[float]] = {"tandem": [], "memory": [], "naive": [], "wait": []}
        train_pool = pool_options("train", num_cpus=1)
        for repeat in range(args.repeats):
            rate, wait = tandem_path(spec, settings.storage_uri)
            results["tandem"].append(rate)
            results["wait"].append(wait)
            results["memory"].append(
                ray.get(memory_loop.options(**train_pool).remote(str(path), args.epochs, False))
            )
            results["naive"].append(
                ray.get(memory_loop.options(**train_pool).remote(str(path), args.epochs, True))
            )
            print(
                f"repeat {repeat + 1}: tandem {rate:,.0f}/s (wait {100 * wait:.1f}%), "
                f"memory {results['memory'][-1]:,.0f}/s, naive {results['naive'][-1]:,.0f}/s",
                flush=True,
            )
    median = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"\nrows={args.rows} epochs={args.epochs} repeats={args.repeats} "
        f"model=mlp{HIDDEN} batch={BATCH} workers=1 (train pool)"
    )
    print(
        f"(a) tandem Parquet path : {median['tandem']:>10,.0f} samples/s  "
        f"data-wait {100 * median['wait']:.1f}%"
    )
    print(f"(b) in-memory tensors   : {median['memory']:>10,.0f} samples/s")
    print(f"(c) naive read-then-train: {median['naive']:>9,.0f} samples/s")
    print(
        f"ratio a/b = {median['tandem'] / median['memory']:.2f}   "
        f"ratio c/b = {median['naive'] / median['memory']:.2f}"
    )


if __name__ == "__main__":
    main()
