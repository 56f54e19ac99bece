"""Fair comparisons of model versions: each scored on the same held-out data, in the batch
pool, and stored as an ``Evaluation`` record that ``promote --if-better`` gates on."""

from tandem.evaluation.metrics import CLASSIFICATION, REGRESSION, metric_names
from tandem.evaluation.records import Evaluation, find, load_all, save
from tandem.evaluation.scoring import evaluate, plan

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "Evaluation",
    "evaluate",
    "find",
    "load_all",
    "metric_names",
    "plan",
    "save",
]
