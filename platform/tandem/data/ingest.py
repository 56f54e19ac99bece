"""Ray Data ingest: Parquet → preprocessed ``{x, y}`` datasets, read in the train pool.

The only module of ``tandem.data`` that calls Ray. Statistics are fitted on the
training split only; the resulting transform runs inside Ray Data tasks that
ask for the train pool, so ingest never touches serve cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
import ray.data
from ray.data import Dataset

from tandem.cluster.pools import pool_resources
from tandem.data.preprocess import Moments, Transform, feature_matrix
from tandem.data.source import ParquetSource, check_label, feature_width, open_source
from tandem.registry.manifest import DatasetRef, InputSchema, Preprocessing
from tandem.specs.dataset import DatasetSpec

POOL = "train"
# Preprocessed data up to this size is computed once and kept in the object
# store: every epoch then streams ready tensors instead of re-reading Parquet.
# Larger data streams from storage each epoch (read overlapping compute).
CACHE_MAX_BYTES = 512 * 1024**2


@dataclass(frozen=True)
class CheckedData:
    """What pre-submission checks learned about the data (no Ray needed)."""

    train: ParquetSource
    validation: ParquetSource | None
    num_features: int
    list_column: str | None


@dataclass(frozen=True)
class PreparedData:
    train: Dataset
    validation: Dataset
    input: InputSchema
    preprocessing: Preprocessing
    classes: list[int] | None
    example: list[float]
    refs: list[DatasetRef]
    train_rows: int


def check(spec: DatasetSpec, task: str) -> CheckedData:
    """Open the URIs and check columns and types; ``SpecError`` names the field."""
    train = open_source(spec.train, "dataset.train")
    validation = open_source(spec.validation, "dataset.validation") if spec.validation else None
    for source in filter(None, (train, validation)):
        schema = source.schema()
        width, list_column = feature_width(schema, spec)
        check_label(schema, spec, task)
    return CheckedData(train, validation, width, list_column)


def _read(source: ParquetSource, spec: DatasetSpec) -> Dataset:
    # Ray Data's V2 Parquet source lists files in a task that ignores the
    # caller's resources, so it could run on any pool's cores; the V1 source
    # reads footers in the driver (head, never serve) and runs every read task
    # with the resources asked for here.
    ray.data.DataContext.get_current().use_datasource_v2 = False
    return ray.data.read_parquet(
        list(source.files),
        filesystem=source.arrow_fs,
        columns=[*spec.features, spec.label],
        resources=pool_resources(POOL),
    )


class PartialMoments:
    """One block's feature moments and label values, as a one-row batch."""

    def __init__(self, features: list[str], label: str, task: str) -> None:
        self.features, self.label, self.task = features, label, task

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        y = batch[self.label] if self.task == "classification" else None
        m = Moments.of(feature_matrix(batch, self.features), y)
        return {
            "count": np.array([m.count]),
            "total": m.total[None, :],
            "squares": m.squares[None, :],
            "labels": np.array([sorted(m.labels)], dtype=object),
            "first_row": feature_matrix(batch, self.features)[:1],
        }


def _fit(train: Dataset, spec: DatasetSpec, task: str) -> tuple[Moments, list[float]]:
    """Moments of the whole split and its first row (the manifest's example), in one pass."""
    rows = train.map_batches(
        PartialMoments(spec.features, spec.label, task),
        batch_format="numpy",
        batch_size=None,
        resources=pool_resources(POOL),
    ).take_all()
    parts = [
        Moments(int(r["count"]), np.asarray(r["total"]), np.asarray(r["squares"]), set(r["labels"]))
        for r in rows
    ]
    return reduce(Moments.merge, parts), np.asarray(rows[0]["first_row"]).tolist()


class ToTensors:
    """Map a raw batch to ``{"x": float32 [N, F], "y": int64 | float32 [N]}``."""

    def __init__(self, transform: Transform, features: list[str], label: str) -> None:
        self.transform = transform
        self.features = features
        self.label = label

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = self.transform.features(feature_matrix(batch, self.features))
        raw = batch[self.label]
        if self.transform.classes is not None:
            y = self.transform.label_index(raw)
        else:
            y = raw.astype(np.float32)
        return {"x": x, "y": y}


def prepare(spec: DatasetSpec, task: str, checked: CheckedData, seed: int) -> PreparedData:
    """Read, split (when no validation URI), fit statistics and build tensor datasets."""
    train = _read(checked.train, spec)
    if checked.validation is not None:
        validation = _read(checked.validation, spec)
    else:
        train, validation = train.train_test_split(
            test_size=spec.validation_fraction, shuffle=True, seed=seed
        )
    moments, example = _fit(train, spec, task)
    mean, std = moments.mean_std()
    classes = sorted(moments.labels) if task == "classification" else None
    transform = Transform.create(mean, std, classes)
    to_tensors = ToTensors(transform, spec.features, spec.label)
    features = (
        spec.features
        if checked.list_column is None
        else [f"{checked.list_column}[{i}]" for i in range(checked.num_features)]
    )
    refs = [
        DatasetRef(uri=s.uri, fingerprint=s.fingerprint())
        for s in filter(None, (checked.train, checked.validation))
    ]
    tensors = [
        split.map_batches(
            to_tensors, batch_format="numpy", zero_copy_batch=True, resources=pool_resources(POOL)
        )
        for split in (train, validation)
    ]
    if moments.count * (checked.num_features + 1) * 4 <= CACHE_MAX_BYTES:
        tensors = [split.materialize() for split in tensors]
    return PreparedData(
        train=tensors[0],
        validation=tensors[1],
        input=InputSchema(features=features, source_column=checked.list_column),
        preprocessing=Preprocessing(mean=mean, std=std),
        classes=classes,
        example=example,
        refs=refs,
        train_rows=moments.count,
    )
