"""Preprocessing fitted on the training split: feature statistics and label classes.

Pure numpy, shared by training (Ray Data ``map_batches``), serving and batch
inference, so a served model sees exactly what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-6


def feature_matrix(batch: dict[str, np.ndarray], features: list[str]) -> np.ndarray:
    """``[N, F]`` float32 from feature columns or from one list column."""
    if len(features) == 1:
        column = batch[features[0]]
        if column.dtype == object:  # a list column may arrive as an array of arrays
            column = np.stack(list(column))
        if column.ndim > 1:
            return np.ascontiguousarray(column, dtype=np.float32).reshape(len(column), -1)
    return np.stack([batch[name] for name in features], axis=1).astype(np.float32, copy=False)


@dataclass
class Moments:
    """Running per-feature count, sum and sum of squares (mergeable across blocks)."""

    count: int
    total: np.ndarray
    squares: np.ndarray
    labels: set[int]

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray | None) -> Moments:
        x64 = x.astype(np.float64)
        labels = {int(v) for v in np.unique(y)} if y is not None else set()
        return cls(len(x64), x64.sum(axis=0), (x64**2).sum(axis=0), labels)

    def merge(self, other: Moments) -> Moments:
        return Moments(
            self.count + other.count,
            self.total + other.total,
            self.squares + other.squares,
            self.labels | other.labels,
        )

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = self.total / max(self.count, 1)
        variance = np.maximum(self.squares / max(self.count, 1) - mean**2, 0.0)
        std = np.sqrt(variance)
        std[std < MIN_STD] = 1.0  # a constant feature: leave it centred, unscaled
        return mean.tolist(), std.tolist()


@dataclass(frozen=True)
class Transform:
    """Normalise features; map label values to class indices."""

    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray | None

    @classmethod
    def create(cls, mean: list[float], std: list[float], classes: list[int] | None) -> Transform:
        return cls(
            np.asarray(mean, dtype=np.float32),
            np.asarray(std, dtype=np.float32),
            None if classes is None else np.asarray(classes, dtype=np.int64),
        )

    def features(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def label_index(self, y: np.ndarray) -> np.ndarray:
        assert self.classes is not None
        index = np.searchsorted(self.classes, y)
        index = np.clip(index, 0, len(self.classes) - 1)
        if not np.array_equal(self.classes[index], y):
            unknown = sorted(set(np.asarray(y).tolist()) - set(self.classes.tolist()))
            raise ValueError(f"label values {unknown[:5]} were not in the training split")
        return index.astype(np.int64)
