"""Image training ingest: Tandem's Parquet path (PNG decode in Ray Data) vs. decoded tensors.

    .venv/bin/python benchmarks/image_train_ingest.py --rows 24000 --epochs 2 --repeats 3

On a private embedded cluster (started and stopped here), one worker in the train pool,
the same ``tandem.models:image_cnn`` (``--channels``, default [16, 32] as in
jobs/specs/digits-image.yaml), Adam (lr 1e-3), batch 256 and one torch thread in both
variants, over the same synthetic 32×32 RGB PNGs (4 classes, ``_images.py``):

  (a) tandem – Parquet ``image`` column → Ray Data (train pool: read, PNG decode,
      per-channel standardisation) → TorchTrainer, ``iter_torch_batches`` with prefetch
      (``train_ingest.tandem_path``);
  (b) memory – the same step loop over tensors decoded once, up front, with the same
      preprocessing (``tandem.preprocess.model_array``), in a task in the train pool.

Prints samples/s per repeat, then medians over ``--repeats`` (first epoch of each run
excluded as warm-up), Tandem's data-wait fraction and the ratio a/b.

Rows decide what (a) measures: above ~21,800 training rows of 3×32×32 the preprocessed
data outgrows both ingest's object-store cache (``ingest.CACHE_MAX_BYTES``) and the
worker's shard cache (``loop.SHARD_CACHE_MAX_BYTES``), so every epoch re-reads Parquet
and decodes every PNG in Ray Data, overlapped with training. Fewer rows measure replayed
tensors (decode only before the first epoch); the script says which case ran. Where the
train pool is one core (a 2-core machine), decode tasks and the training step share it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster import private_cluster
from _images import CLASSES, SHAPE, image_schema, synthetic_images, write_parquet
from train_ingest import BATCH, tandem_path

from tandem.cluster import pool_options
from tandem.data import ingest
from tandem.models import build_model
from tandem.preprocess import model_array
from tandem.registry import InputSchema
from tandem.specs import TrainJobSpec
from tandem.train import loop

FACTORY = "tandem.models:image_cnn"
LR = 0.001
LABEL = "label"


def image_spec(train: Path, validation: Path, epochs: int, channels: list[int]) -> TrainJobSpec:
    return TrainJobSpec.model_validate(
        {
            "name": "bench-image-ingest",
            "dataset": {
                "train": str(train),
                "validation": str(validation),
                "inputs": [
                    {
                        "name": "image",
                        "kind": "image",
                        "column": "image",
                        "shape": SHAPE,
                        "normalize": "fitted",
                    }
                ],
                "label": LABEL,
            },
            "model": {"factory": FACTORY, "kwargs": {"channels": channels}},
            "train": {"epochs": epochs, "batch_size": BATCH, "lr": LR, "seed": 0},
            "scaling": {"num_workers": 1, "cpus_per_worker": 1},
            "checkpoint": {"every_epochs": 1, "keep": epochs},
        }
    )


def decodes_every_epoch(rows: int) -> bool:
    """Whether ``rows`` training images outgrow both caches, as ingest and the loop size
    them: ingest counts 8 bytes per value, the worker the float32 image and int64 label."""
    values = int(np.prod(SHAPE))
    return (
        rows * (8 * values + 8) > ingest.CACHE_MAX_BYTES
        and rows * (4 * values + 8) > loop.SHARD_CACHE_MAX_BYTES
    )


def memory_rates(
    path: str, schema: dict[str, Any], channels: list[int], epochs: int, classes: int
) -> list[float]:
    """samples/s of each epoch of the plain loop over images decoded once, up front.

    Labels are 0..classes-1, so they are already the class indices Tandem trains on."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    image = InputSchema.model_validate(schema)
    table = pq.read_table(path, columns=[image.columns[0], LABEL])
    x = torch.from_numpy(model_array(image, table[image.columns[0]].to_pylist()))
    y = torch.tensor(table[LABEL].to_numpy())
    model = build_model(FACTORY, {"channels": channels}, [image], classes)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            index = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x[index]), y[index]).backward()
            optimizer.step()
        rates.append(len(x) / (time.perf_counter() - started))
    return rates


def write_splits(folder: Path, rows: int, validation_rows: int) -> tuple[Path, Path, InputSchema]:
    """Training and validation Parquet files, and the image input as training will fit it
    (per-channel statistics of the training split)."""
    pixels, labels = synthetic_images(rows, seed=0)
    train = write_parquet(folder / "train.parquet", pixels, labels)
    schema = image_schema("image", pixels)
    validation = write_parquet(folder / "validation.parquet", *synthetic_images(validation_rows, 1))
    return train, validation, schema


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=24_000, help="training images")
    parser.add_argument("--validation-rows", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=2, help="per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", default="16,32", help="image_cnn channels, comma-separated")
    parser.add_argument("--port-base", type=int, default=26000)
    args = parser.parse_args()
    channels = [int(c) for c in args.channels.split(",")]
    results: dict[str, list[float]] = {"tandem": [], "memory": [], "wait": []}
    with tempfile.TemporaryDirectory() as folder:
        train, validation, schema = write_splits(Path(folder), args.rows, args.validation_rows)
        spec = image_spec(train, validation, args.epochs, channels)
        memory = ray.remote(memory_rates)
        with private_cluster(args.port_base) as settings:
            train_pool = pool_options("train", num_cpus=1)
            for repeat in range(args.repeats):
                rate, wait = tandem_path(spec, settings.storage_uri)
                rates = ray.get(
                    memory.options(**train_pool).remote(
                        str(train),
                        schema.model_dump(mode="json"),
                        channels,
                        args.epochs,
                        len(CLASSES),
                    )
                )
                results["tandem"].append(rate)
                results["wait"].append(wait)
                results["memory"].append(statistics.median(rates[1:] or rates))
                print(
                    f"repeat {repeat + 1}: tandem {rate:,.0f}/s (wait {100 * wait:.1f}%), "
                    f"memory {results['memory'][-1]:,.0f}/s",
                    flush=True,
                )
    median = {k: statistics.median(v) for k, v in results.items()}
    decode = (
        "PNG decode in Ray Data every epoch (data outgrows ingest's and the worker's caches)"
        if decodes_every_epoch(args.rows)
        else "decoded tensors replayed from cache after the first epoch (too few rows to "
        "measure per-epoch decode)"
    )
    print(
        f"\nrows={args.rows} (+{args.validation_rows} validation) epochs={args.epochs} "
        f"repeats={args.repeats} model=image_cnn{channels} input=3×32×32 PNG batch={BATCH} "
        f"workers=1 (train pool)\n{decode}"
    )
    print(
        f"(a) tandem Parquet path : {median['tandem']:>9,.0f} samples/s  "
        f"data-wait {100 * median['wait']:.1f}%"
    )
    print(f"(b) in-memory tensors   : {median['memory']:>9,.0f} samples/s")
    print(f"ratio a/b = {median['tandem'] / median['memory']:.2f}")


if __name__ == "__main__":
    main()
