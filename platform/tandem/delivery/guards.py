"""The verdicts of a delivery's shadow and canary steps. Pure Python, unit-tested.

Each guard turns a window's figures into a ``Verdict``: passed or not, a reason a
person can read in ``tandem deliveries``, and the figures it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tandem.specs import CanaryGuard, ShadowGuard


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def judge_shadow(
    guard: ShadowGuard,
    task: Literal["classification", "regression"],
    compared: int,
    agreement: float | None,
    mean_abs_error: float | None,
    errors: int,
) -> Verdict:
    """``compared``: mirrored requests answered by both versions; ``errors``: mirrored
    requests the candidate failed on."""
    evidence: dict[str, Any] = {
        "compared": compared,
        "agreement": agreement,
        "mean_abs_error": mean_abs_error,
        "shadow_errors": errors,
    }
    if compared < guard.min_requests:
        return Verdict(
            False,
            f"only {compared} mirrored requests (need {guard.min_requests}): not enough "
            "traffic to judge the candidate",
            evidence,
        )
    if errors:
        return Verdict(False, f"the candidate failed {errors} mirrored requests", evidence)
    if task == "classification":
        assert agreement is not None, "classification shadows record agreement"
        if agreement < guard.min_agreement:
            return Verdict(
                False,
                f"label agreement with the live version {agreement:.3f} < "
                f"{guard.min_agreement:.3f}",
                evidence,
            )
        return Verdict(True, f"label agreement {agreement:.3f} over {compared} requests", evidence)
    assert mean_abs_error is not None, "regression shadows record the error"
    if guard.max_error is not None and mean_abs_error > guard.max_error:
        return Verdict(
            False,
            f"mean absolute difference from the live version {mean_abs_error:.4g} > "
            f"{guard.max_error:.4g}",
            evidence,
        )
    return Verdict(
        True, f"mean absolute difference {mean_abs_error:.4g} over {compared} requests", evidence
    )


def judge_canary(
    guard: CanaryGuard,
    weight: int,
    requests: int,
    errors: int,
    p99_ms: float | None,
    baseline_p99_ms: float | None,
) -> Verdict:
    """One canary step: the candidate's requests, 5xx answers and p99 in the window,
    against the live version's p99 (``baseline_p99_ms``, measured without the candidate)."""
    error_rate = errors / requests if requests else 0.0
    limit_ms = (
        None
        if baseline_p99_ms is None
        else guard.max_p99_ratio * baseline_p99_ms + guard.p99_slack_ms
    )
    evidence: dict[str, Any] = {
        "weight": weight,
        "requests": requests,
        "errors": errors,
        "error_rate": error_rate,
        "p99_ms": p99_ms,
        "live_p99_ms": baseline_p99_ms,
        "p99_limit_ms": limit_ms,
    }
    if requests < guard.min_requests:
        return Verdict(
            False,
            f"{weight}%: only {requests} requests reached the candidate (need "
            f"{guard.min_requests}): not enough traffic to judge it",
            evidence,
        )
    if error_rate > guard.max_error_rate:
        return Verdict(
            False,
            f"{weight}%: error rate {error_rate:.2%} ({errors} of {requests}) > "
            f"{guard.max_error_rate:.2%}",
            evidence,
        )
    if p99_ms is not None and limit_ms is not None and p99_ms > limit_ms:
        assert baseline_p99_ms is not None
        return Verdict(
            False,
            f"{weight}%: p99 {p99_ms:.1f} ms > {guard.max_p99_ratio:g} × the live version's "
            f"{baseline_p99_ms:.1f} ms + {guard.p99_slack_ms:g} ms",
            evidence,
        )
    return Verdict(
        True,
        f"{weight}%: {requests} requests, error rate {error_rate:.2%}, p99 "
        f"{p99_ms if p99_ms is not None else float('nan'):.1f} ms (limit "
        f"{limit_ms if limit_ms is not None else float('nan'):.1f} ms)",
        evidence,
    )
