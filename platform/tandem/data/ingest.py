"""Ray Data ingest: Parquet → preprocessed ``{x0, x1, ..., y}`` datasets, read in the train pool.

The only module of ``tandem.data`` that calls Ray. Statistics are fitted on the
training split only; the resulting transform (``tandem.preprocess``, the same code
serving and batch scoring run) runs inside Ray Data tasks that ask for the train
pool, so ingest never touches serve cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ray.data import Dataset

from tandem.cluster import pool_resources
from tandem.data.columns import LABEL_KEY, input_key
from tandem.data.content import scan
from tandem.data.fit import FitPart, PartialFit, fitted, label_index
from tandem.data.read import read_parquet
from tandem.data.schema import draft_inputs, draft_target, input_field
from tandem.data.source import ParquetSource, open_source
from tandem.errors import SpecError
from tandem.preprocess import feature_matrix, gather, model_array
from tandem.registry import DatasetRef, InputSchema, TargetSchema
from tandem.specs import DatasetSpec, Pool

POOL = Pool.TRAIN
# Preprocessed data up to this size is computed once and kept in the object
# store: every epoch then streams ready tensors instead of re-reading Parquet.
# Larger data streams from storage each epoch (read overlapping compute).
CACHE_MAX_BYTES = 512 * 1024**2
# Parquet bytes per read block. Ray Data otherwise splits even a small file into
# two blocks per cluster CPU, and every block is a task (and, cold, a worker process).
READ_BLOCK_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class CheckedData:
    """What pre-submission checks learned about the data (no Ray needed)."""

    train: ParquetSource
    validation: ParquetSource | None
    inputs: list[InputSchema]
    """Drafts: columns, shapes and dtypes known, nothing fitted yet."""
    target: TargetSchema
    max_ids: dict[str, int]
    """Largest token id per sequence input, over both splits."""


@dataclass(frozen=True)
class PreparedData:
    train: Dataset
    validation: Dataset
    inputs: list[InputSchema]
    """Fitted: statistics, vocabulary sizes and an example row filled in."""
    target: TargetSchema
    refs: list[DatasetRef]
    train_rows: int

    @property
    def out_features(self) -> int:
        if self.target.classes is not None:
            return len(self.target.classes)
        return math.prod(self.target.shape)


def check(spec: DatasetSpec, task: str) -> CheckedData:
    """Open the URIs, check columns and types against the spec and scan image and sequence
    values; ``SpecError`` names the field (and the file and row for a bad value)."""
    train = open_source(spec.train, "dataset.train")
    validation = open_source(spec.validation, "dataset.validation") if spec.validation else None
    sources = [s for s in (train, validation) if s is not None]
    # Every split must fit the spec; the training split's drafts are kept.
    drafts = [draft_inputs(s.schema(), spec) for s in sources]
    targets = [draft_target(s.schema(), spec, task) for s in sources]
    if targets[-1] != targets[0]:
        raise SpecError(
            "dataset",
            [f"dataset.label: {spec.label!r} has another type in the validation data"],
        )
    fields = [input_field(spec, i) for i in range(len(drafts[0]))]
    report = scan(sources, drafts[0], fields)
    return CheckedData(train, validation, drafts[0], targets[0], report.max_ids)


def read_split(source: ParquetSource, columns: list[str]) -> Dataset:
    """One split's ``columns``, read in the train pool in blocks of about
    ``READ_BLOCK_BYTES``."""
    blocks = max(1, math.ceil(source.total_bytes() / READ_BLOCK_BYTES))
    return read_parquet(source, columns, POOL, blocks)


class ToTensors:
    """Map a raw batch to ``{"x0": ..., "x1": ..., "y": int64 | float32}`` (model arrays)."""

    def __init__(self, inputs: list[InputSchema], target: TargetSchema, label: str) -> None:
        self.inputs, self.label = inputs, label
        self.classes = None if target.classes is None else np.asarray(target.classes)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {
            input_key(i): model_array(schema, gather(schema, batch))
            for i, schema in enumerate(self.inputs)
        }
        raw = batch[self.label]
        if self.classes is not None:
            out[LABEL_KEY] = label_index(self.classes, raw)
        else:
            out[LABEL_KEY] = feature_matrix({self.label: raw}, [self.label]).reshape(len(raw), -1)
        return out


def dataset_ref(source: ParquetSource) -> DatasetRef:
    """What the version's lineage records about one dataset URI (its content fingerprint)."""
    found = source.fingerprint()
    return DatasetRef(
        uri=source.uri,
        fingerprint=found.digest,
        fingerprint_kind=found.kind,
        files=found.files,
        bytes=found.bytes,
    )


def prepare(spec: DatasetSpec, task: str, checked: CheckedData, seed: int) -> PreparedData:
    """Read, split (when no validation URI), fit on the training split, build tensor datasets."""
    columns = sorted({c for d in checked.inputs for c in d.columns} | {spec.label})
    train = read_split(checked.train, columns)
    if checked.validation is not None:
        validation = read_split(checked.validation, columns)
    else:
        train, validation = train.train_test_split(
            test_size=spec.validation_fraction, shuffle=True, seed=seed
        )
    parts = train.map_batches(
        PartialFit(checked.inputs, spec.label, task == "classification"),
        batch_format="numpy",
        batch_size=None,
        resources=pool_resources(POOL),
    ).take_all()
    inputs, target, rows = fitted(
        checked.inputs,
        checked.target,
        [FitPart.from_json(p["part"]) for p in parts],
        checked.max_ids,
    )
    to_tensors = ToTensors(inputs, target, spec.label)
    tensors = [
        split.map_batches(
            to_tensors, batch_format="numpy", zero_copy_batch=True, resources=pool_resources(POOL)
        )
        for split in (train, validation)
    ]
    row_bytes = sum(math.prod(s.shape) * np.dtype(s.dtype).itemsize for s in inputs)
    row_bytes += 8 * math.prod(target.shape)  # int64 class index or float32 values
    if rows * row_bytes <= CACHE_MAX_BYTES:
        tensors = [split.materialize() for split in tensors]
    refs = [dataset_ref(s) for s in filter(None, (checked.train, checked.validation))]
    return PreparedData(
        train=tensors[0],
        validation=tensors[1],
        inputs=inputs,
        target=target,
        refs=refs,
        train_rows=rows,
    )
