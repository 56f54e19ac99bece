"""Fair comparisons of model versions: each scored on the same held-out data, in the batch
pool, and stored as an ``Evaluation`` record that ``promote --if-better`` gates on.

``scoring`` runs the batch job (Ray, torch): its names are bound on first use.
"""

from typing import TYPE_CHECKING

from tandem._lazy import lazy_exports
from tandem.evaluation.metrics import CLASSIFICATION, REGRESSION, metric_names
from tandem.evaluation.records import Evaluation, find, load_all, save

if TYPE_CHECKING:
    from tandem.evaluation.scoring import evaluate, plan
else:
    __getattr__ = lazy_exports(__name__, {"tandem.evaluation.scoring": ("evaluate", "plan")})

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
