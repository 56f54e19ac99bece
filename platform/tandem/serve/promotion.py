"""Whether a candidate version may take an alias: the ``--if-better`` rule. Pure Python."""

from __future__ import annotations

from tandem.errors import RegistryError
from tandem.registry.manifest import Manifest

LOWER_IS_BETTER = ("rmse", "mse", "mae", "loss", "error")
HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "auc", "r2", "precision", "recall")


def lower_is_better(metric: str) -> bool:
    """Direction of ``metric`` from its name (``val_rmse`` lower, ``val_accuracy`` higher)."""
    words = metric.lower().replace("-", "_").split("_")
    if any(w in LOWER_IS_BETTER for w in words):
        return True
    if any(w in HIGHER_IS_BETTER for w in words):
        return False
    raise RegistryError(
        f"--if-better {metric}: cannot tell whether lower or higher is better; name a metric "
        f"containing one of {LOWER_IS_BETTER} (lower) or {HIGHER_IS_BETTER} (higher)"
    )


def check_better(metric: str, candidate: Manifest, current: Manifest) -> None:
    """Raise ``RegistryError`` unless ``candidate`` is at least as good as ``current``."""
    for manifest in (candidate, current):
        if metric not in manifest.metrics:
            raise RegistryError(
                f"--if-better {metric}: version {manifest.version} of {manifest.name} has no "
                f"metric {metric!r}; it has {sorted(manifest.metrics)}"
            )
    new, old = candidate.metrics[metric], current.metrics[metric]
    worse = new > old if lower_is_better(metric) else new < old
    if worse:
        raise RegistryError(
            f"refusing to promote {candidate.name} v{candidate.version}: {metric} {new:.6g} is "
            f"worse than v{current.version}'s {old:.6g}"
        )
