"""Stored evaluations: versions of one model scored on the same held-out data.

Each is a registry record of kind ``evaluations`` (``<name>/evaluations/<id>.json``),
written once and never changed; ids sort by creation time, so the newest is last.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tandem.errors import IntegrityError
from tandem.registry import Registry

KIND = "evaluations"


class Evaluation(BaseModel):
    """Versions of one model scored on the same rows of the same data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """Record key: creation time (UTC) then a random suffix, so ids sort oldest first."""
    model: str
    created_at: str
    """UTC ISO-8601 time the scores were recorded."""
    candidate: int = Field(ge=1)
    """The version under evaluation."""
    baseline: int | None = None
    """The version it was compared with; ``None`` when it was scored alone."""
    against: str | None = None
    """What ``baseline`` was resolved from: an alias (``production``) or a version number."""
    data: str
    """URI of the Parquet data every version was scored on."""
    fingerprint: str
    """sha256 over the data's files, sizes and modification times (``ParquetSource``)."""
    label: str
    """The data's label column."""
    rows: int = Field(ge=1)
    """Rows scored; every version saw all of them."""
    scores: dict[str, dict[str, float]]
    """Metrics per version (the version number as a string key): ``accuracy`` and
    ``loss`` for classification, ``rmse`` and ``mae`` for regression."""

    def versions(self) -> list[int]:
        return sorted(int(v) for v in self.scores)

    def scored(self, version: int) -> bool:
        return str(version) in self.scores

    def score(self, version: int) -> dict[str, float]:
        """``version``'s metrics (``KeyError`` when this evaluation did not score it)."""
        return self.scores[str(version)]

    @staticmethod
    def new_id(now: datetime) -> str:
        return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def save(registry: Registry, evaluation: Evaluation) -> None:
    registry.put_record(
        evaluation.model, KIND, evaluation.id, evaluation.model_dump_json(indent=2).encode()
    )


def load_all(registry: Registry, name: str) -> list[Evaluation]:
    """Every stored evaluation of ``name``, oldest first."""
    found = []
    for data in registry.records(name, KIND):
        try:
            found.append(Evaluation.model_validate_json(data))
        except ValidationError as error:
            raise IntegrityError(
                f"a stored evaluation of {name!r} in {registry.uri}/{name}/{KIND} is not valid "
                f"({error.error_count()} problems); delete that file and evaluate again"
            ) from None
    return found


def find(registry: Registry, name: str, candidate: int, baseline: int | None) -> Evaluation | None:
    """The newest stored evaluation that scored ``candidate`` and ``baseline`` (when not
    ``None``) on the same data, whichever of them it was asked about; ``None`` if none."""
    for evaluation in reversed(load_all(registry, name)):
        if evaluation.scored(candidate) and (baseline is None or evaluation.scored(baseline)):
            return evaluation
    return None


def created_now() -> tuple[str, str]:
    """A fresh record id and its ``created_at`` stamp."""
    now = datetime.now(UTC)
    return Evaluation.new_id(now), now.isoformat(timespec="seconds")
