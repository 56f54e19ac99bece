"""Running mean and standard deviation along one axis: mergeable across Ray Data blocks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-6


@dataclass
class Moments:
    """Per-slot count, sum and sum of squares (a slot: a feature, or a channel)."""

    count: int
    total: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        """Moments of ``[N, S, ...]``: slot ``s`` gathers ``values[:, s, ...]``."""
        x = values.astype(np.float64).reshape(values.shape[0], values.shape[1], -1)
        per_slot = x.shape[0] * x.shape[2]
        return cls(per_slot, x.sum(axis=(0, 2)), (x**2).sum(axis=(0, 2)))

    def merge(self, other: Moments) -> Moments:
        return Moments(
            self.count + other.count, self.total + other.total, self.squares + other.squares
        )

    def mean_std(self) -> tuple[list[float], list[float]]:
        mean = self.total / max(self.count, 1)
        variance = np.maximum(self.squares / max(self.count, 1) - mean**2, 0.0)
        std = np.sqrt(variance)
        std[std < MIN_STD] = 1.0  # a constant slot: leave it centred, unscaled
        return mean.tolist(), std.tolist()
