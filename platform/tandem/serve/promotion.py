"""Whether a candidate version may take an alias: the ``--if-better`` gate. Pure Python.

It reads only an ``Evaluation``, where both versions were scored on the same rows, never
the metrics each version computed on its own validation data at training time.
"""

from __future__ import annotations

from dataclasses import dataclass

from tandem.errors import RegistryError, SpecError
from tandem.evaluation import Evaluation, metric_names

LOWER_IS_BETTER = ("rmse", "mse", "mae", "loss", "error")
HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "auc", "r2", "precision", "recall")
TRAINING_PREFIX = "val_"
"""Training's names (``val_accuracy``) name the same measure as an evaluation's (``accuracy``)."""


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


def evaluation_metric(metric: str) -> str:
    """The evaluation's name for ``metric``: ``val_accuracy`` → ``accuracy``."""
    name = metric.strip().lower()
    return name.removeprefix(TRAINING_PREFIX)


def check_metric(metric: str, task: str) -> str:
    """The evaluation's name for ``metric``, refused (``SpecError``) unless evaluations of a
    ``task`` model measure it: checked before anything is scored."""
    name = evaluation_metric(metric)
    known = metric_names("classification" if task == "classification" else "regression")
    if name not in known:
        raise SpecError(
            f"--if-better {metric}",
            [f"evaluations of a {task} model measure {list(known)} (or val_{known[0]}, ...)"],
        )
    return name


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    """Why, with both scores: what ``promote`` prints or refuses with."""


def gate(
    metric: str,
    evaluation: Evaluation | None,
    candidate_version: int,
    current_version: int | None,
    min_gain: float = 0.0,
) -> GateDecision:
    """May ``candidate_version`` replace ``current_version`` by ``metric``? It must be
    better by at least ``min_gain`` (and by more than nothing: a tie keeps the current
    version). ``evaluation`` must score both (it may be ``None`` only when there is no
    current version or the candidate is already it)."""
    if min_gain < 0:
        raise SpecError("--min-gain", [f"--min-gain must be ≥ 0 (got {min_gain})"])
    if current_version is None:
        return GateDecision(True, "nothing to beat: no version holds the alias yet")
    if current_version == candidate_version:
        return GateDecision(True, f"v{candidate_version} already holds the alias; nothing moves")
    if evaluation is None or not (
        evaluation.scored(candidate_version) and evaluation.scored(current_version)
    ):
        scored = [] if evaluation is None else evaluation.versions()
        raise RegistryError(
            f"--if-better needs an evaluation scoring v{candidate_version} and "
            f"v{current_version} on the same data (this one scored {scored}); run "
            f"`tandem evaluate NAME {candidate_version} --against {current_version}`"
        )
    name = evaluation_metric(metric)
    new, old = evaluation.score(candidate_version), evaluation.score(current_version)
    if name not in new or name not in old:
        have = sorted(set(new) & set(old))
        raise SpecError(
            f"--if-better {metric}",
            [f"evaluation {evaluation.id} has no metric {name!r}; it has {have}"],
        )
    lower = lower_is_better(name)
    gain = old[name] - new[name] if lower else new[name] - old[name]
    scores = (
        f"{name} {new[name]:.6g} (v{candidate_version}) vs {old[name]:.6g} "
        f"(v{current_version}, current) on {evaluation.rows:,} rows of {evaluation.data}"
    )
    if gain == 0:
        return GateDecision(False, f"a tie keeps the current version: {scores}")
    if gain < 0:
        return GateDecision(False, f"worse, {'higher' if lower else 'lower'} {scores}")
    if gain < min_gain:
        return GateDecision(
            False, f"better by only {gain:.6g}, less than the required {min_gain:g}: {scores}"
        )
    return GateDecision(True, f"better by {gain:.6g}: {scores}")
