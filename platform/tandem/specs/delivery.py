"""A delivery: take one candidate version from training to an alias, with evidence at each step.

``tandem deliver SPEC`` (or ``python -m tandem.delivery SPEC`` under ``ray job submit``)
trains or picks the candidate, evaluates it against the alias's current version on the
same data, mirrors live traffic to it (shadow), shifts traffic to it step by step
(canary) and promotes it; a failed guard rolls everything back, with the reason stored.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from tandem.specs.base import Spec
from tandem.specs.train import NAME_PATTERN


class CandidateSpec(Spec):
    """The version to deliver: trained now, or one already in the registry."""

    train: str | None = None
    """Path of a training job spec (YAML) whose run registers the candidate."""
    version: int | None = Field(None, ge=1)
    """A registered version of the delivery's model."""

    @model_validator(mode="after")
    def _exactly_one(self) -> CandidateSpec:
        if (self.train is None) == (self.version is None):
            raise ValueError(
                "give exactly one of candidate.train (a training spec to run) or "
                "candidate.version (a registered version)"
            )
        return self


class EvaluateGuard(Spec):
    """Score the candidate and the alias's current version on the same held-out data."""

    metric: str | None = None
    """What must improve: ``accuracy`` (classification) or ``rmse`` (regression) by default."""
    min_gain: float = Field(0.0, ge=0)
    """How much better the candidate must score; a tie never passes (it keeps the live
    version, since a change that gains nothing is only risk)."""
    data: str | None = None
    """Held-out Parquet; default the candidate's validation split from its lineage."""
    label: str | None = None
    """Label column of ``data``; default the candidate's training label."""


class ShadowGuard(Spec):
    """Mirror live traffic to the candidate; its answers are compared, never returned."""

    share: int = Field(100, ge=1, le=100)
    """Percent of the live version's requests mirrored to the candidate."""
    seconds: float = Field(10.0, gt=0, le=3600)
    """How long to watch before judging."""
    min_requests: int = Field(50, ge=1)
    """Mirrored requests needed for a verdict; with fewer after 3 × ``seconds`` the
    delivery rolls back (there was not enough traffic to judge)."""
    min_agreement: float = Field(0.9, ge=0, le=1)
    """Classification: share of rows whose label equals the live version's."""
    max_error: float | None = Field(None, ge=0)
    """Regression: largest mean absolute difference from the live version's prediction."""


class CanaryGuard(Spec):
    """Send a growing share of traffic to the candidate, checking it at every step."""

    steps: list[int] = Field(default_factory=lambda: [5, 25, 100], min_length=1)
    """Percent of unpinned traffic the candidate answers, step by step (increasing)."""
    seconds: float = Field(10.0, gt=0, le=3600)
    """How long each step runs before it is judged."""
    min_requests: int = Field(20, ge=1)
    """Candidate requests needed to judge a step; with fewer after 3 × ``seconds`` the
    delivery rolls back."""
    max_error_rate: float = Field(0.01, ge=0, le=1)
    """Largest share of the candidate's requests answered with a 5xx."""
    max_p99_ratio: float = Field(1.5, ge=1)
    """Largest candidate p99 latency over the live version's p99 measured in the baseline
    step (before any traffic moved: a slow candidate sharing replicas with the live
    version slows both, so a same-window comparison would hide it)."""
    p99_slack_ms: float = Field(2.0, ge=0)
    """Allowed on top of the ratio: millisecond p99s of tiny models jitter by that much."""

    @model_validator(mode="after")
    def _increasing(self) -> CanaryGuard:
        if any(not 1 <= step <= 100 for step in self.steps):
            raise ValueError(f"canary.steps must be percentages in 1..100 (got {self.steps})")
        if any(a >= b for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"canary.steps must increase (got {self.steps})")
        return self


class DeliverySpec(Spec):
    model: str = Field(pattern=NAME_PATTERN)
    """Registry model, deployed and serving ``alias`` (``tandem deploy`` it first)."""
    alias: str = "production"
    """The alias the candidate takes when every guard passes."""
    candidate: CandidateSpec
    evaluate: EvaluateGuard = Field(default_factory=EvaluateGuard)
    shadow: ShadowGuard | None = Field(default_factory=ShadowGuard)
    """``null`` skips the shadow step."""
    canary: CanaryGuard = Field(default_factory=CanaryGuard)
