"""Training figures as Prometheus metrics, through Ray's metrics agent.

Rank 0 sets them after every epoch. Ray exports them with a ``ray_`` prefix from each
node's metrics port (``ray_tandem_train_loss{model="digits",run_id="digits-2025..."}``),
where the Prometheus that scrapes Ray already looks. Names follow Prometheus's
conventions: base units, ``_ratio`` for fractions, ``_per_second`` for rates.
"""

from __future__ import annotations

from ray.util.metrics import Gauge

TAG_KEYS = ("model", "run_id")
GAUGES = {
    "epoch": ("tandem_train_epoch", "Epochs finished by the training run."),
    "samples_per_s": (
        "tandem_train_samples_per_second",
        "Training samples per second over all workers in the last epoch.",
    ),
    "data_wait_fraction": (
        "tandem_train_data_wait_ratio",
        "Share of rank 0's last epoch spent waiting for input batches.",
    ),
    "train_loss": ("tandem_train_loss", "Mean training loss of the last epoch."),
    "val_loss": ("tandem_train_val_loss", "Validation loss after the last epoch."),
    "val_accuracy": ("tandem_train_val_accuracy_ratio", "Validation accuracy (0 to 1)."),
    "val_rmse": ("tandem_train_val_rmse", "Validation root mean squared error."),
}
"""Epoch metric key → (gauge name, description)."""


class TrainGauges:
    """The run's gauges, created once per worker and tagged with the model and run id."""

    def __init__(self, model: str, run_id: str) -> None:
        self._gauges: dict[str, Gauge] = {}
        for key, (name, description) in GAUGES.items():
            gauge = Gauge(name, description=description, tag_keys=TAG_KEYS)
            gauge.set_default_tags({"model": model, "run_id": run_id})
            self._gauges[key] = gauge

    def set(self, metrics: dict[str, float]) -> None:
        """Set each gauge from one epoch's metrics (``epoch`` is 0-based there)."""
        for key, gauge in self._gauges.items():
            if key in metrics:
                gauge.set(metrics[key] + 1 if key == "epoch" else metrics[key])
