"""Held-out metrics from a runner's outputs and the label column. Pure numpy.

Classification (``probabilities`` and ``label`` outputs): ``accuracy`` and ``loss``, the
mean cross-entropy of the true class. Regression (``prediction``): ``rmse`` and ``mae``,
where a vector target counts as the mean over its values per row, as training's
``val_rmse`` does. Sums are kept per chunk (``Totals``) so a data set larger than memory
is scored chunk by chunk with the same result as all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from tandem.models import Outputs

Task = Literal["classification", "regression"]
CLASSIFICATION = ("accuracy", "loss")
REGRESSION = ("rmse", "mae")
PROBABILITY_FLOOR = 1e-7
"""Probabilities are clipped here, so one confidently wrong row costs -log(1e-7) ≈ 16 to
the loss instead of making it infinite."""


def metric_names(task: Task) -> tuple[str, ...]:
    return CLASSIFICATION if task == "classification" else REGRESSION


def class_index(labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """Each label's output index; -1 for a label the model never saw (it can only be wrong)."""
    known = np.asarray(classes, dtype=np.int64)
    values = np.asarray(labels).astype(np.int64, copy=False)
    index = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
    return np.where(known[index] == values, index, -1)


def cross_entropy(probabilities: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per row: -log of the probability given to the true class (clipped; 0 for unknown)."""
    rows = np.arange(len(index))
    true = np.where(index >= 0, probabilities[rows, np.maximum(index, 0)], 0.0)
    return -np.log(np.clip(true.astype(np.float64), PROBABILITY_FLOOR, 1.0))


def targets(labels: np.ndarray) -> np.ndarray:
    """Regression labels (numbers, or one fixed-size list per row) as float64 ``[N, K]``."""
    values = np.asarray(labels)
    if values.dtype == object:  # a list column arrives as one array per row
        values = np.stack([np.asarray(row, dtype=np.float64) for row in values])
    return values.astype(np.float64, copy=False).reshape(len(values), -1)


def _errors(prediction: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``prediction - target`` as ``[N, K]``; ``ValueError`` when the widths differ."""
    predicted = np.asarray(prediction, dtype=np.float64).reshape(len(prediction), -1)
    target = targets(labels)
    if predicted.shape != target.shape:
        raise ValueError(
            f"the label holds {target.shape[1]} value(s) per row but the model predicts "
            f"{predicted.shape[1]}"
        )
    return predicted - target


def squared_errors(prediction: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row: the mean squared error over the row's values."""
    return np.asarray((_errors(prediction, labels) ** 2).mean(axis=1))


def absolute_errors(prediction: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row: the mean absolute error over the row's values."""
    return np.asarray(np.abs(_errors(prediction, labels)).mean(axis=1))


def accuracy(outputs: Outputs, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(outputs["label"]) == np.asarray(labels)))


def loss(outputs: Outputs, labels: np.ndarray, classes: list[int]) -> float:
    return float(cross_entropy(outputs["probabilities"], class_index(labels, classes)).mean())


def rmse(outputs: Outputs, labels: np.ndarray) -> float:
    return float(np.sqrt(squared_errors(outputs["prediction"], labels).mean()))


def mae(outputs: Outputs, labels: np.ndarray) -> float:
    return float(absolute_errors(outputs["prediction"], labels).mean())


@dataclass(frozen=True)
class Totals:
    """Row count and per-metric sums over the chunks scored so far."""

    rows: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: Totals) -> Totals:
        names = self.sums.keys() | other.sums.keys()
        summed = {n: self.sums.get(n, 0.0) + other.sums.get(n, 0.0) for n in sorted(names)}
        return Totals(self.rows + other.rows, summed)

    def metrics(self) -> dict[str, float]:
        """The metrics over every row summed; ``rmse`` is the root of the mean square."""
        assert self.rows > 0, "no rows were scored"
        means = {name: total / self.rows for name, total in self.sums.items()}
        if "rmse" in means:
            means["rmse"] = float(np.sqrt(means["rmse"]))
        return means


def chunk_totals(
    task: Task, outputs: Outputs, labels: np.ndarray, classes: list[int] | None
) -> Totals:
    """One chunk's sums: what ``Totals.metrics`` turns into ``metric_names(task)``."""
    rows = len(labels)
    if task == "classification":
        assert classes is not None, "a classifier's manifest lists its classes"
        hits = np.asarray(outputs["label"]) == np.asarray(labels)
        losses = cross_entropy(outputs["probabilities"], class_index(labels, classes))
        return Totals(rows, {"accuracy": float(hits.sum()), "loss": float(losses.sum())})
    prediction = outputs["prediction"]
    return Totals(
        rows,
        {
            "rmse": float(squared_errors(prediction, labels).sum()),
            "mae": float(absolute_errors(prediction, labels).sum()),
        },
    )
