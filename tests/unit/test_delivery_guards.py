"""The delivery spec and the shadow and canary verdicts, without a cluster."""

from __future__ import annotations

import pytest

from tandem.delivery.guards import judge_canary, judge_shadow
from tandem.delivery.record import DeliveryRecord, StepRecord, now_iso
from tandem.errors import SpecError
from tandem.specs import load
from tandem.specs.delivery import CanaryGuard, DeliverySpec, ShadowGuard


def spec(**fields: object) -> DeliverySpec:
    return load(DeliverySpec, {"model": "digits", "candidate": {"version": 3}, **fields})


def test_defaults_shadow_then_canary_5_25_100() -> None:
    parsed = spec()
    assert parsed.alias == "production" and parsed.shadow is not None
    assert parsed.canary.steps == [5, 25, 100]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"candidate": {}}, "candidate"),
        ({"candidate": {"version": 2, "train": "x.yaml"}}, "candidate"),
        ({"canary": {"steps": [50, 25]}}, "canary"),
        ({"canary": {"steps": [0, 100]}}, "canary"),
        ({"shadow": {"share": 0}}, "shadow.share"),
        ({"model": "Bad Name"}, "model"),
    ],
)
def test_bad_specs_name_the_field(fields: dict[str, object], where: str) -> None:
    with pytest.raises(SpecError) as raised:
        spec(**fields)
    assert any(p.startswith(where) for p in raised.value.problems), raised.value.problems


def test_shadow_needs_enough_requests_and_agreement() -> None:
    guard = ShadowGuard(min_requests=50, min_agreement=0.9)
    few = judge_shadow(guard, "classification", 10, 1.0, None, 0)
    assert not few.passed and "only 10 mirrored requests" in few.reason
    low = judge_shadow(guard, "classification", 100, 0.8, None, 0)
    assert not low.passed and "0.800 < 0.900" in low.reason
    failed = judge_shadow(guard, "classification", 100, 1.0, None, 2)
    assert not failed.passed and "failed 2" in failed.reason
    good = judge_shadow(guard, "classification", 100, 0.95, None, 0)
    assert good.passed and good.evidence["compared"] == 100


def test_regression_shadow_is_held_to_max_error_when_set() -> None:
    assert judge_shadow(ShadowGuard(min_requests=1), "regression", 5, None, 3.0, 0).passed
    strict = ShadowGuard(min_requests=1, max_error=0.5)
    verdict = judge_shadow(strict, "regression", 5, None, 0.7, 0)
    assert not verdict.passed and "0.7 > 0.5" in verdict.reason


def test_canary_step_verdicts() -> None:
    guard = CanaryGuard(min_requests=20, max_error_rate=0.01, max_p99_ratio=1.5, p99_slack_ms=2)
    assert "only 5 requests" in judge_canary(guard, 5, 5, 0, 3.0, 3.0).reason
    errors = judge_canary(guard, 25, 100, 2, 3.0, 3.0)
    assert not errors.passed and "error rate 2.00%" in errors.reason
    slow = judge_canary(guard, 25, 100, 0, 9.0, 4.0)  # limit 1.5 × 4 + 2 = 8 ms
    assert not slow.passed and "p99 9.0 ms" in slow.reason
    assert slow.evidence["p99_limit_ms"] == pytest.approx(8.0)
    assert judge_canary(guard, 25, 100, 1, 7.9, 4.0).passed  # 1% is allowed


def test_record_steps_accumulate_and_end() -> None:
    record = DeliveryRecord(
        id="d", model="m", alias="production", live=1, spec={}, started_at=now_iso()
    )
    step = StepRecord(step="evaluate", started_at=now_iso(), seconds=1.0, passed=False, reason="r")
    ended = record.with_step(step).ended("rolled_back", "evaluate: r")
    assert record.steps == [] and ended.steps == [step]
    assert ended.outcome == "rolled_back" and ended.finished_at is not None
    assert DeliveryRecord.model_validate_json(ended.model_dump_json()) == ended
