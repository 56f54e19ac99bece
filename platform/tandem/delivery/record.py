"""What a delivery stores: every step's verdict and evidence, and how it ended.

Kept in the registry beside the model (``registry/<name>/deliveries/<id>.json``),
rewritten after every step, so a running delivery can be followed and a finished one
read back with ``tandem deliveries NAME``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from tandem.registry import Record

Outcome = Literal["running", "promoted", "rolled_back", "failed"]
"""``rolled_back``: a guard failed and traffic went back to the live version;
``failed``: an error stopped the delivery (traffic went back too)."""
RECORD_KIND = "deliveries"


class StepRecord(Record):
    step: str
    """``train``, ``evaluate``, ``baseline``, ``shadow``, ``canary 25%``, ``promote``."""
    started_at: str
    seconds: float
    passed: bool
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    """The figures the verdict was made from."""


class DeliveryRecord(Record):
    id: str
    model: str
    alias: str
    live: int
    """The version the alias named when the delivery started."""
    candidate: int | None = None
    """Known once the candidate is trained or picked."""
    spec: dict[str, Any]
    started_at: str
    finished_at: str | None = None
    outcome: Outcome = "running"
    reason: str = ""
    steps: list[StepRecord] = Field(default_factory=list)

    def with_step(self, step: StepRecord) -> DeliveryRecord:
        return self.model_copy(update={"steps": [*self.steps, step]})

    def ended(self, outcome: Outcome, reason: str) -> DeliveryRecord:
        return self.model_copy(
            update={"outcome": outcome, "reason": reason, "finished_at": now_iso()}
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_delivery_id(model: str) -> str:
    return f"{model}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"
