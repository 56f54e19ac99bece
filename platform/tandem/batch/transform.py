"""Scoring one batch: the model version's own runner, so batch and online compute alike.

Pure numpy and torch, no Ray: the actor in ``tandem.batch.pipeline`` holds one
``Scorer`` and calls it per batch.
"""

from __future__ import annotations

import numpy as np

from tandem.data.preprocess import feature_matrix
from tandem.registry.manifest import Manifest
from tandem.models import ModelRunner


def input_columns(manifest: Manifest) -> list[str]:
    """Parquet columns holding the model's features (one list column or one per feature)."""
    source = manifest.input.source_column
    return [source] if source is not None else list(manifest.input.features)


class Scorer:
    """Raw Parquet batch → ``{id column, model outputs}`` with one output row per input row."""

    def __init__(self, runner: ModelRunner, id_column: str | None) -> None:
        self.runner = runner
        self.columns = input_columns(runner.manifest)
        self.id_column = id_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = feature_matrix(batch, self.columns)
        scored = dict(self.runner.predict(rows))
        if self.id_column is not None:
            return {self.id_column: batch[self.id_column], **scored}
        return scored


class RowIndex:
    """Numbers rows in the order batches arrive (the input's order when order is preserved)."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.next = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = len(next(iter(batch.values())))
        index = np.arange(self.next, self.next + size, dtype=np.int64)
        self.next += size
        return {self.column: index, **batch}
