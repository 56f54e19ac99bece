"""Rollout evidence: what each version answered, and how a shadow compares. Pure Python.

A replica counts every answered request (version, HTTP status, latency) and every shadow
comparison in an ``EvidenceAccumulator`` (appends and counters, cheap enough for the
request path) and flushes it about once a second as ``Record`` values. The per-model
``EvidenceBook`` actor (``tandem.serve.evidence_book``) keeps them in an ``EvidenceLog``
and ``summarise`` turns the records since a time into a ``RolloutEvidence``: what an
auto-canary driver reads to promote or roll back.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from tandem.serve.statuses import is_server_error

RETENTION_S = 600.0
"""How far back an ``EvidenceLog`` keeps records (a rollout step is seconds to minutes)."""
MAX_SAMPLES = 2_000_000
"""Most latency samples an ``EvidenceLog`` keeps (8 bytes each): under very high traffic
the oldest records go before ``RETENTION_S`` is reached."""

ShadowOutcome = Literal["agree", "disagree", "compared", "error", "dropped"]
"""One mirrored request: the labels ``agree`` on every row or ``disagree`` on some
(classification), ``compared`` (regression: see the absolute error), the shadow pass
failed (``error``), or the shadow queue was full and the request was not re-run
(``dropped``)."""
Arrays = Mapping[str, np.ndarray]
"""A runner's named outputs (``label``/``probabilities``, or ``prediction``)."""


@dataclass(frozen=True)
class ShadowResult:
    """How the shadow did on one mirrored request."""

    version: int
    """The version that answered (the default)."""
    shadow_version: int
    outcome: ShadowOutcome
    rows: int = 0
    """Rows compared (0 unless the shadow ran)."""
    agreeing_rows: int = 0
    """Classification: rows whose labels are equal."""
    values: int = 0
    """Regression: predicted values compared (rows × target size)."""
    abs_error_sum: float = 0.0
    """Regression: the sum of ``|live - shadow|`` over those values."""
    latency_ms: float | None = None
    """The shadow pass (preparation and forward) of the batch that carried this request."""

    @property
    def mean_abs_error(self) -> float | None:
        return self.abs_error_sum / self.values if self.values else None


def compare_outputs(
    version: int, shadow_version: int, live: Arrays, shadow: Arrays, latency_ms: float
) -> ShadowResult:
    """Classification: argmax labels row by row; regression: ``|live - shadow|``."""
    if "label" in live:
        same = np.asarray(live["label"]) == np.asarray(shadow["label"])
        agreeing = int(same.sum())
        return ShadowResult(
            version,
            shadow_version,
            "agree" if agreeing == len(same) else "disagree",
            rows=len(same),
            agreeing_rows=agreeing,
            latency_ms=latency_ms,
        )
    expected, got = np.asarray(live["prediction"]), np.asarray(shadow["prediction"])
    if expected.shape != got.shape:
        # Broadcasting (N,) against (N, 1) would compare every row with every other.
        raise ValueError(f"shadow predictions have shape {got.shape}, live {expected.shape}")
    error = np.abs(expected.astype(np.float64) - got)
    return ShadowResult(
        version,
        shadow_version,
        "compared",
        rows=len(expected),
        values=error.size,
        abs_error_sum=float(error.sum()),
        latency_ms=latency_ms,
    )


@dataclass(frozen=True)
class RequestRecord:
    """One replica's answered requests of one version during one flush window."""

    time: float
    """Wall-clock (``time.time()``) start of the window."""
    version: int
    latencies_ms: array[float]
    statuses: dict[int, int]
    """Requests by HTTP status."""


@dataclass
class ShadowTally:
    """Sums over mirrored requests; also the flushed form (``ShadowRecord``)."""

    mirrored: int = 0
    """Requests the shadow re-ran (with or without an error), not counting dropped ones."""
    compared: int = 0
    """Mirrored requests whose shadow answer was compared (``mirrored - errors``)."""
    rows: int = 0
    labelled_rows: int = 0
    agreeing_rows: int = 0
    values: int = 0
    abs_error_sum: float = 0.0
    errors: int = 0
    dropped: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))

    def add(self, result: ShadowResult) -> None:
        if result.outcome == "dropped":
            self.dropped += 1
            return
        self.mirrored += 1
        if result.outcome == "error":
            self.errors += 1
            return
        self.compared += 1
        self.rows += result.rows
        if result.outcome != "compared":
            self.labelled_rows += result.rows
            self.agreeing_rows += result.agreeing_rows
        self.values += result.values
        self.abs_error_sum += result.abs_error_sum
        if result.latency_ms is not None:
            self.latencies_ms.append(result.latency_ms)

    def merge(self, other: ShadowTally) -> None:
        self.mirrored += other.mirrored
        self.compared += other.compared
        self.rows += other.rows
        self.labelled_rows += other.labelled_rows
        self.agreeing_rows += other.agreeing_rows
        self.values += other.values
        self.abs_error_sum += other.abs_error_sum
        self.errors += other.errors
        self.dropped += other.dropped
        self.latencies_ms.extend(other.latencies_ms)


@dataclass(frozen=True)
class ShadowRecord:
    """One replica's shadow comparisons of one (live, shadow) pair during one window."""

    time: float
    version: int
    shadow_version: int
    tally: ShadowTally


Record = RequestRecord | ShadowRecord


class EvidenceAccumulator:
    """One replica's evidence since its last flush. Not thread-safe: the replica calls it
    from its event loop only."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._start: float | None = None
        self._latencies: dict[int, array[float]] = {}
        self._statuses: dict[int, dict[int, int]] = {}
        self._shadows: dict[tuple[int, int], ShadowTally] = {}

    def request(self, version: int, status: int, latency_ms: float) -> None:
        if self._start is None:
            self._start = self._clock()
        latencies = self._latencies.get(version)
        if latencies is None:
            latencies = self._latencies[version] = array("d")
            self._statuses[version] = {}
        latencies.append(latency_ms)
        statuses = self._statuses[version]
        statuses[status] = statuses.get(status, 0) + 1

    def shadow(self, result: ShadowResult) -> None:
        if self._start is None:
            self._start = self._clock()
        key = (result.version, result.shadow_version)
        tally = self._shadows.get(key)
        if tally is None:
            tally = self._shadows[key] = ShadowTally()
        tally.add(result)

    def flush(self) -> list[Record]:
        """Everything since the last flush, stamped with the time of its first event; then
        start over."""
        if self._start is None:
            return []
        start = self._start
        records: list[Record] = [
            RequestRecord(start, version, latencies, self._statuses[version])
            for version, latencies in self._latencies.items()
        ]
        records += [
            ShadowRecord(start, version, shadow, tally)
            for (version, shadow), tally in self._shadows.items()
        ]
        self._start, self._latencies, self._statuses, self._shadows = None, {}, {}, {}
        return records


class VersionEvidence(BaseModel):
    """How one version answered its requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    requests: int
    """Answered requests (any status)."""
    errors: int
    """Answers with a 5xx status (the server's fault; 4xx are the client's)."""
    error_rate: float
    """``errors / requests``."""
    p50_ms: float
    p99_ms: float
    """Latency percentiles (nearest rank) in the replica, from request to response."""


class ShadowEvidence(BaseModel):
    """How a shadow version compared with the versions whose requests it re-ran."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    """The shadow version."""
    against: tuple[int, ...]
    """The live versions whose answers it was compared with."""
    mirrored: int
    """Requests re-run on the shadow (errors included, dropped ones not)."""
    compared: int
    """Mirrored requests whose answers were compared (``mirrored - errors``)."""
    compared_rows: int
    agreement: float | None
    """Classification: the share of compared rows whose labels are equal."""
    mean_abs_error: float | None
    """Regression: mean ``|live - shadow|`` over every compared value."""
    p99_ms: float | None
    """Latency of the shadow passes (nearest rank); ``None`` when none succeeded."""
    errors: int
    """Mirrored requests whose shadow pass failed."""
    dropped: int
    """Requests chosen for mirroring but not re-run because the shadow fell behind."""


class RolloutEvidence(BaseModel):
    """Everything recorded since ``since`` (records whose window started at or after it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: float
    versions: dict[int, VersionEvidence] = {}
    """By version, for every version that answered a request."""
    shadows: dict[int, ShadowEvidence] = {}
    """By shadow version."""


def percentile(samples: np.ndarray, q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``q`` % of samples ≤ it."""
    return float(np.percentile(samples, q, method="inverted_cdf"))


def summarise(records: Iterable[Record], since: float) -> RolloutEvidence:
    """Per-version and per-shadow evidence of the records whose window started at or after
    ``since`` (a window straddling ``since`` is left out, so nothing older is counted)."""
    latencies: dict[int, list[array[float]]] = {}
    statuses: dict[int, dict[int, int]] = {}
    shadows: dict[int, ShadowTally] = {}
    against: dict[int, set[int]] = {}
    for record in records:  # the book's records, read in place: merge into fresh tallies
        if record.time < since:
            continue
        if isinstance(record, RequestRecord):
            latencies.setdefault(record.version, []).append(record.latencies_ms)
            counts = statuses.setdefault(record.version, {})
            for status, count in record.statuses.items():
                counts[status] = counts.get(status, 0) + count
        else:
            if record.shadow_version not in shadows:
                shadows[record.shadow_version] = ShadowTally()
            shadows[record.shadow_version].merge(record.tally)
            against.setdefault(record.shadow_version, set()).add(record.version)
    versions = {v: _version(v, latencies[v], statuses[v]) for v in sorted(latencies)}
    shadow = {v: _shadow(v, shadows[v], against[v]) for v in sorted(shadows)}
    return RolloutEvidence(since=since, versions=versions, shadows=shadow)


def _version(version: int, chunks: list[array[float]], statuses: dict[int, int]) -> VersionEvidence:
    samples = np.concatenate([np.frombuffer(chunk, dtype=np.float64) for chunk in chunks])
    requests = sum(statuses.values())
    errors = sum(count for status, count in statuses.items() if is_server_error(status))
    return VersionEvidence(
        version=version,
        requests=requests,
        errors=errors,
        error_rate=errors / requests,
        p50_ms=percentile(samples, 50),
        p99_ms=percentile(samples, 99),
    )


def _shadow(version: int, tally: ShadowTally, against: set[int]) -> ShadowEvidence:
    samples = np.frombuffer(tally.latencies_ms, dtype=np.float64)
    return ShadowEvidence(
        version=version,
        against=tuple(sorted(against)),
        mirrored=tally.mirrored,
        compared=tally.compared,
        compared_rows=tally.rows,
        agreement=tally.agreeing_rows / tally.labelled_rows if tally.labelled_rows else None,
        mean_abs_error=tally.abs_error_sum / tally.values if tally.values else None,
        p99_ms=percentile(samples, 99) if len(samples) else None,
        errors=tally.errors,
        dropped=tally.dropped,
    )


class EvidenceLog:
    """The records of one model, bounded by age (``retention_s``) and by latency samples
    (``max_samples``): the state of its ``EvidenceBook`` actor."""

    def __init__(self, retention_s: float = RETENTION_S, max_samples: int = MAX_SAMPLES) -> None:
        self._retention_s = retention_s
        self._max_samples = max_samples
        self._records: deque[Record] = deque()
        self._samples = 0

    def __len__(self) -> int:
        return len(self._records)

    def add(self, records: Iterable[Record], now: float) -> None:
        for record in records:
            self._records.append(record)
            self._samples += _samples(record)
        # Records arrive about in time order (each replica flushes once a second), so the
        # oldest sit at the left.
        while self._records and (
            self._records[0].time < now - self._retention_s or self._samples > self._max_samples
        ):
            self._samples -= _samples(self._records.popleft())

    def summary(self, since: float) -> RolloutEvidence:
        return summarise(self._records, since)


def _samples(record: Record) -> int:
    if isinstance(record, RequestRecord):
        return len(record.latencies_ms)
    return len(record.tally.latencies_ms)
