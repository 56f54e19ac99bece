"""One delivery, top to bottom: candidate → evaluate → baseline → shadow → canary → promote.

Every step ends in a ``StepRecord`` stored with the delivery. A failed guard sends all
traffic back to the live version (the canary and shadow are cleared in place, as a
promote is, so no request fails) and ends the delivery ``rolled_back`` with its
reason; the alias moves only in the last step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tandem.delivery.guards import Verdict, judge_canary, judge_shadow
from tandem.delivery.record import (
    RECORD_KIND,
    DeliveryRecord,
    Outcome,
    StepRecord,
    new_delivery_id,
    now_iso,
)
from tandem.errors import NotFoundError, SpecError, TandemError
from tandem.registry import Registry
from tandem.serve import CanaryTarget, RolloutEvidence, ShadowTarget
from tandem.settings import Settings
from tandem.specs import DeliverySpec, TrainJobSpec, load

FLUSH_S = 1.5
"""Replicas send their evidence about once a second: wait this long after a window."""
POLL_S = 1.0
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
Say = Callable[[str], None]


class StepFailed(Exception):
    """A guard did not pass: the delivery rolls back (internal control flow)."""


def deliver(
    source: DeliverySpec | str | Path | dict[str, object],
    settings: Settings,
    say: Say = print,
) -> DeliveryRecord:
    """Run a delivery; returns its record (``promoted``, ``rolled_back`` or ``failed``)."""
    spec = load(DeliverySpec, source)
    train_spec = candidate_train_spec(spec, settings)
    registry = Registry.default(settings)
    live = live_version(spec, settings, registry)
    record = DeliveryRecord(
        id=new_delivery_id(spec.model),
        model=spec.model,
        alias=spec.alias,
        live=live,
        spec=spec.model_dump(mode="json"),
        started_at=now_iso(),
    )
    return Delivery(spec, settings, registry, record, say).run(train_spec)


def candidate_train_spec(spec: DeliverySpec, settings: Settings) -> TrainJobSpec | None:
    """The candidate's training spec, checked (data and factory) before anything moves."""
    if spec.candidate.train is None:
        return None
    from tandem.train import preflight, with_resolved_paths

    train = with_resolved_paths(load(TrainJobSpec, spec.candidate.train), settings)
    if train.name != spec.model:
        raise SpecError(
            "candidate.train",
            [f"the training spec registers {train.name!r}, not the delivery's {spec.model!r}"],
        )
    preflight(train)
    return train


def live_version(spec: DeliverySpec, settings: Settings, registry: Registry) -> int:
    """The alias's version, which the model's deployment must be serving with no rollout
    under way."""
    from tandem.serve import deployments as list_deployments

    current = registry.aliases(spec.model).get(spec.alias)
    if current is None:
        raise NotFoundError(
            f"model {spec.model!r} has no alias {spec.alias!r}: promote a first version "
            "and deploy it before delivering the next"
        )
    deployed = {d.spec.model: d for d in list_deployments(settings)}.get(spec.model)
    if deployed is None:
        raise NotFoundError(f"{spec.model!r} is not deployed; `tandem deploy` it first")
    live = deployed.live
    if live.default != current:
        raise SpecError(
            "model",
            [
                f"the deployment of {spec.model!r} serves v{live.default} by default, not "
                f"{spec.alias!r} (v{current}): deploy it with version: {spec.alias}"
            ],
        )
    if live.canary is not None or live.shadow is not None:
        raise SpecError(
            "model",
            [f"{spec.model!r} already has a canary or shadow: finish that rollout first"],
        )
    return current


class Delivery:
    """The steps of one delivery and its record, saved after every step."""

    def __init__(
        self,
        spec: DeliverySpec,
        settings: Settings,
        registry: Registry,
        record: DeliveryRecord,
        say: Say,
    ) -> None:
        self.spec, self.settings, self.registry = spec, settings, registry
        self.record, self.say = record, say
        self.baseline_p99_ms: float | None = None
        self.traffic_moved = False

    def run(self, train_spec: TrainJobSpec | None) -> DeliveryRecord:
        self.say(
            f"delivery {self.record.id}: {self.spec.model} {self.spec.alias} is v{self.record.live}"
        )
        self._save()
        outcome: Outcome = "promoted"
        try:
            candidate = self._candidate(train_spec)
            self._evaluate(candidate)
            self._baseline()
            if self.spec.shadow is not None:
                self._shadow(candidate)
            for weight in self.spec.canary.steps:
                self._canary(candidate, weight)
            self._promote(candidate)
            reason = f"v{candidate} passed every guard and is now {self.spec.alias}"
        except StepFailed as failed:
            outcome, reason = "rolled_back", str(failed)
        except TandemError as error:
            outcome, reason = "failed", str(error)
        except BaseException as error:
            self._end("failed", f"{type(error).__name__}: {error}")
            raise
        return self._end(outcome, reason)

    # --- steps ----------------------------------------------------------------

    def _candidate(self, train_spec: TrainJobSpec | None) -> int:
        started = time.monotonic()
        if train_spec is None:
            assert self.spec.candidate.version is not None
            manifest = self.registry.verify(self.spec.model, self.spec.candidate.version)
            step, reason = "candidate", f"registered v{manifest.version}"
            evidence: dict[str, object] = {"version": manifest.version}
        else:
            from tandem.cluster import current_submission_id
            from tandem.train import run as train

            self.say(f"training {train_spec.name} ({train_spec.train.epochs} epochs)")
            result = train(
                train_spec, submission_id=current_submission_id(), settings=self.settings
            )
            manifest = result.manifest
            step, reason = "train", f"run {result.run_id} registered v{manifest.version}"
            evidence = {"run_id": result.run_id, "version": manifest.version, **manifest.metrics}
        self.record = self.record.model_copy(update={"candidate": manifest.version})
        self._step(step, started, Verdict(True, reason, evidence))
        return manifest.version

    def _evaluate(self, candidate: int) -> None:
        from tandem.evaluation import evaluate
        from tandem.serve import gate

        started = time.monotonic()
        guard = self.spec.evaluate
        task = self.registry.manifest(self.spec.model, candidate).task
        metric = guard.metric or DEFAULT_METRIC[task]
        evaluation = evaluate(
            self.settings,
            self.spec.model,
            candidate,
            against=self.record.live,
            data=guard.data,
            label=guard.label,
        )
        decision = gate(metric, evaluation, candidate, self.record.live, guard.min_gain)
        evidence = {
            "evaluation": evaluation.id,
            "data": evaluation.data,
            "rows": evaluation.rows,
            "scores": evaluation.scores,
        }
        self._step("evaluate", started, Verdict(decision.passed, decision.reason, evidence))

    def _baseline(self) -> None:
        """The live version's p99 with nothing else running: what the canary is held to."""
        started = time.monotonic()
        window = self.spec.canary
        live = self._watch(window.seconds, window.min_requests, self.record.live).versions.get(
            self.record.live
        )
        requests = live.requests if live is not None else 0
        if live is None or requests < window.min_requests:
            verdict = Verdict(
                False,
                f"only {requests} requests reached v{self.record.live} in the baseline "
                f"window (need {window.min_requests}): the canary cannot be judged without "
                "traffic",
                {"requests": requests},
            )
        else:
            self.baseline_p99_ms = live.p99_ms
            verdict = Verdict(
                True,
                f"v{self.record.live}: {requests} requests, p99 {live.p99_ms:.1f} ms",
                {"requests": requests, "p99_ms": live.p99_ms, "p50_ms": live.p50_ms},
            )
        self._step("baseline", started, verdict)

    def _shadow(self, candidate: int) -> None:
        guard = self.spec.shadow
        assert guard is not None
        started = time.monotonic()
        self._set_traffic(shadow=ShadowTarget(version=candidate, share=guard.share))
        self.say(
            f"shadow: mirroring {guard.share}% of v{self.record.live}'s requests to v{candidate}"
        )
        evidence = self._watch(guard.seconds, guard.min_requests, None, shadow=candidate)
        shadow = evidence.shadows.get(candidate)
        task = self.registry.manifest(self.spec.model, candidate).task
        verdict = judge_shadow(
            guard,
            task,
            compared=shadow.compared if shadow else 0,
            agreement=shadow.agreement if shadow else None,
            mean_abs_error=shadow.mean_abs_error if shadow else None,
            errors=shadow.errors if shadow else 0,
        )
        live = evidence.versions.get(self.record.live)
        verdict.evidence["live_p99_ms"] = live.p99_ms if live else None
        verdict.evidence["baseline_p99_ms"] = self.baseline_p99_ms
        verdict.evidence["shadow_p99_ms"] = shadow.p99_ms if shadow else None
        self._step("shadow", started, verdict)

    def _canary(self, candidate: int, weight: int) -> None:
        guard = self.spec.canary
        started = time.monotonic()
        self._set_traffic(canary=CanaryTarget(version=candidate, weight=weight))
        self.say(f"canary: v{candidate} answers {weight}% of requests")
        found = self._watch(guard.seconds, guard.min_requests, candidate).versions.get(candidate)
        verdict = judge_canary(
            guard,
            weight,
            requests=found.requests if found else 0,
            errors=found.errors if found else 0,
            p99_ms=found.p99_ms if found else None,
            baseline_p99_ms=self.baseline_p99_ms,
        )
        self._step(f"canary {weight}%", started, verdict)

    def _promote(self, candidate: int) -> None:
        from tandem.serve import promote as promote_version

        started = time.monotonic()
        previous = promote_version(self.spec.model, candidate, self.settings, self.spec.alias)
        self._set_traffic()
        reason = f"{self.spec.alias}: v{previous} → v{candidate}"
        self._step("promote", started, Verdict(True, reason, {"previous": previous}))

    # --- plumbing ---------------------------------------------------------------

    def _set_traffic(
        self, canary: CanaryTarget | None = None, shadow: ShadowTarget | None = None
    ) -> None:
        from tandem.serve import set_traffic

        set_traffic(self.spec.model, self.settings, canary=canary, shadow=shadow)
        self.traffic_moved = canary is not None or shadow is not None

    def _watch(
        self, seconds: float, min_requests: int, version: int | None, shadow: int | None = None
    ) -> RolloutEvidence:
        """Evidence of a window of at least ``seconds``, extended (up to 3×) until
        ``version`` answered (or ``shadow`` compared) ``min_requests`` requests."""
        from tandem.serve import rollout_evidence

        since = time.time()
        time.sleep(seconds + FLUSH_S)
        deadline = since + 3 * seconds + FLUSH_S
        while True:
            evidence = rollout_evidence(self.spec.model, self.settings, since)
            if shadow is not None:
                mirrored = evidence.shadows.get(shadow)
                count = mirrored.compared if mirrored else 0
            else:
                found = evidence.versions.get(version) if version is not None else None
                count = found.requests if found else 0
            if count >= min_requests or time.time() >= deadline:
                return evidence
            time.sleep(POLL_S)

    def _step(self, name: str, started: float, verdict: Verdict) -> None:
        step = StepRecord(
            step=name,
            started_at=now_iso(),
            seconds=round(time.monotonic() - started, 3),
            passed=verdict.passed,
            reason=verdict.reason,
            evidence=verdict.evidence,
        )
        self.record = self.record.with_step(step)
        self._save()
        self.say(f"{'✓' if verdict.passed else '✗'} {name}: {verdict.reason}")
        if not verdict.passed:
            raise StepFailed(f"{name}: {verdict.reason}")

    def _end(self, outcome: Outcome, reason: str) -> DeliveryRecord:
        if outcome != "promoted":
            self._revert()
        self.record = self.record.ended(outcome, reason)
        self._save()
        self.say(f"delivery {self.record.id} {outcome.replace('_', ' ')}: {reason}")
        return self.record

    def _revert(self) -> None:
        """All traffic back to the live version; the alias never moved."""
        if not self.traffic_moved:
            return
        try:
            self._set_traffic()
        except TandemError as error:
            self.say(f"could not clear the canary and shadow of {self.spec.model}: {error}")

    def _save(self) -> None:
        self.registry.put_record(
            self.spec.model,
            RECORD_KIND,
            self.record.id,
            self.record.model_dump_json(indent=2).encode(),
        )


def deliveries(registry: Registry, model: str) -> list[DeliveryRecord]:
    """The model's deliveries, oldest first."""
    return [
        DeliveryRecord.model_validate_json(data) for data in registry.records(model, RECORD_KIND)
    ]
