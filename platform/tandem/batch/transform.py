"""Scoring one batch: the model version's own runner, so batch and online compute alike.

Pure numpy and torch, no Ray: the actor in ``tandem.batch.pipeline`` holds one
``Scorer`` and calls it per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tandem.preprocess import gather
from tandem.registry import Manifest

if TYPE_CHECKING:  # the actor hands in the runner: this module itself needs no torch
    from tandem.models import ModelRunner


def input_columns(manifest: Manifest) -> list[str]:
    """Parquet columns the model's inputs read, in input order."""
    return [column for schema in manifest.inputs for column in schema.columns]


class Scorer:
    """Raw Parquet batch → ``{id column, model outputs}`` with one output row per input row."""

    def __init__(self, runner: ModelRunner, id_column: str | None) -> None:
        self.runner = runner
        self.id_column = id_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raws = [gather(schema, batch) for schema in self.runner.manifest.inputs]
        scored = dict(self.runner.predict(raws))
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
