"""Rollout evidence without Ray: accumulate, flush, keep, summarise."""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import numpy as np
import pytest

from tandem.serve import evidence_book
from tandem.serve.evidence import (
    EvidenceAccumulator,
    EvidenceLog,
    Record,
    ShadowResult,
    compare_outputs,
    summarise,
)
from tandem.serve.evidence_book import EvidenceBook, book_name


def ticking(start: float = 1000.0, step: float = 1.0) -> Iterator[float]:
    """A clock that moves ``step`` seconds per reading."""
    now = start
    while True:
        yield now
        now += step


def test_a_flush_hands_over_what_was_recorded_and_starts_over() -> None:
    clock = ticking()
    evidence = EvidenceAccumulator(lambda: next(clock))
    assert evidence.flush() == []
    evidence.request(1, 200, 3.0)
    evidence.request(2, 500, 9.0)
    evidence.request(1, 400, 1.0)
    records = evidence.flush()
    by_version = {r.version: r for r in records}
    assert set(by_version) == {1, 2} and all(r.time == 1000.0 for r in records)
    assert list(by_version[1].latencies_ms) == [3.0, 1.0]  # type: ignore[union-attr]
    assert by_version[1].statuses == {200: 1, 400: 1}  # type: ignore[union-attr]
    assert evidence.flush() == []
    evidence.request(1, 200, 2.0)
    assert [r.time for r in evidence.flush()] == [1001.0]  # a new window, a new start
    # Records cross a process boundary (replica → book) by pickle.
    evidence.request(3, 200, 1.5)
    again = pickle.loads(pickle.dumps(evidence.flush()))
    assert list(again[0].latencies_ms) == [1.5]


def test_percentiles_are_nearest_rank_and_only_5xx_count_as_errors() -> None:
    evidence = EvidenceAccumulator(lambda: 50.0)
    for latency in range(100, 0, -1):  # 1..100 ms, out of order
        evidence.request(1, 200, float(latency))
    statuses = [200, 200, 400, 404, 422, 500, 503, 200]
    for status in statuses:
        evidence.request(2, status, 10.0)
    found = summarise(evidence.flush(), since=50.0)
    v1, v2 = found.versions[1], found.versions[2]
    assert (v1.requests, v1.errors, v1.error_rate) == (100, 0, 0.0)
    assert (v1.p50_ms, v1.p99_ms) == (50.0, 99.0)
    assert (v2.requests, v2.errors) == (8, 2) and v2.error_rate == pytest.approx(0.25)
    assert found.shadows == {}


def test_summaries_merge_replicas_and_leave_out_windows_before_since() -> None:
    early, late, other = (EvidenceAccumulator(lambda t=t: t) for t in (99.5, 100.0, 100.5))
    early.request(1, 500, 1000.0)  # before `since`: not counted
    for ms in (1.0, 2.0):
        late.request(1, 200, ms)
    other.request(1, 502, 3.0)
    records = early.flush() + late.flush() + other.flush()
    found = summarise(records, since=100.0)
    assert found.versions[1].requests == 3 and found.versions[1].errors == 1
    assert found.versions[1].p99_ms == 3.0
    assert summarise(records, since=101.0).versions == {}


def test_classification_shadows_agree_row_by_row() -> None:
    live = {"label": np.array([3, 5, 7, 7]), "probabilities": np.zeros((4, 3))}
    same = compare_outputs(1, 2, live, {"label": np.array([3, 5, 7, 7])}, 4.0)
    assert (same.outcome, same.rows, same.agreeing_rows) == ("agree", 4, 4)
    differs = compare_outputs(1, 2, live, {"label": np.array([3, 3, 7, 5])}, 6.0)
    assert (differs.outcome, differs.rows, differs.agreeing_rows) == ("disagree", 4, 2)
    with pytest.raises(KeyError):  # a regression shadow of a classifier: an error
        compare_outputs(1, 2, live, {"prediction": np.zeros(4)}, 1.0)


def test_regression_shadows_record_the_absolute_error() -> None:
    live = {"prediction": np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)}
    near = {"prediction": np.array([[1.5, 2.0], [2.0, 4.0]], dtype=np.float32)}
    result = compare_outputs(1, 2, live, near, 2.0)
    assert (result.outcome, result.rows, result.values) == ("compared", 2, 4)
    assert result.mean_abs_error == pytest.approx(1.5 / 4)
    with pytest.raises(ValueError, match="shape"):  # never broadcast (2,) against (2, 1)
        compare_outputs(1, 2, {"prediction": np.zeros(2)}, {"prediction": np.zeros((2, 1))}, 1)


def test_shadow_evidence_sums_agreement_latency_errors_and_drops() -> None:
    evidence = EvidenceAccumulator(lambda: 7.0)
    live = {"label": np.array([1, 1])}
    for index in range(10):  # 10 requests of 2 rows: one row disagrees on 5 of them
        shadow = {"label": np.array([1, 1 if index % 2 else 2])}
        evidence.shadow(compare_outputs(1, 2, live, shadow, latency_ms=float(index + 1)))
    evidence.shadow(ShadowResult(1, 2, "error"))
    evidence.shadow(ShadowResult(1, 2, "dropped"))
    evidence.request(1, 200, 1.0)
    found = summarise(evidence.flush(), since=0.0).shadows[2]
    assert (found.mirrored, found.compared, found.errors, found.dropped) == (11, 10, 1, 1)
    assert found.compared_rows == 20 and found.agreement == pytest.approx(15 / 20)
    assert found.mean_abs_error is None and found.p99_ms == 10.0
    assert found.against == (1,)


def test_a_shadow_that_only_failed_has_no_latency() -> None:
    evidence = EvidenceAccumulator(lambda: 7.0)
    evidence.shadow(ShadowResult(1, 2, "error"))
    found = summarise(evidence.flush(), since=0.0).shadows[2]
    assert (found.errors, found.p99_ms, found.agreement, found.compared) == (1, None, None, 0)


def window(time: float, samples: int) -> list[Record]:
    evidence = EvidenceAccumulator(lambda: time)
    for _ in range(samples):
        evidence.request(1, 200, 1.0)
    return evidence.flush()


def test_the_log_forgets_old_records_and_bounds_its_samples() -> None:
    log = EvidenceLog(retention_s=60, max_samples=100)
    log.add(window(0.0, 10), now=0.0)
    log.add(window(30.0, 10), now=30.0)
    assert len(log) == 2
    log.add(window(70.0, 10), now=70.0)  # the window of t=0 is now older than 60 s
    assert len(log) == 2 and log.summary(0.0).versions[1].requests == 20
    log.add(window(71.0, 90), now=71.0)  # 110 samples > 100: the oldest goes
    assert len(log) == 2 and log.summary(0.0).versions[1].requests == 100


def test_the_book_keeps_what_replicas_send() -> None:
    book = EvidenceBook()  # the actor's class, called in-process
    clock = ticking(start=1e12)  # far future: the book's own retention keeps it
    replica = EvidenceAccumulator(lambda: next(clock))
    replica.request(4, 200, 2.0)
    book.add(replica.flush())
    replica.request(4, 503, 8.0)
    book.add(replica.flush())
    found = book.summary(0.0).versions[4]
    assert (found.requests, found.errors, found.p99_ms) == (2, 1, 8.0)
    assert book_name("digits-mlp") == "tandem-evidence-digits-mlp"


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not reached before the deadline"
        await asyncio.sleep(0.005)


class FakeBook:
    """Stands in for the actor handle: ``add.remote(records).future()``."""

    def __init__(self, fail: bool = False) -> None:
        self.received: list[list[Record]] = []
        self.fail = fail
        self.add = self

    def remote(self, records: list[Record]) -> FakeBook:
        self.received.append(records)
        return self

    def future(self) -> Future[None]:
        done: Future[None] = Future()
        if self.fail:
            done.set_exception(RuntimeError("the book died"))
        else:
            done.set_result(None)
        return done


def test_replicas_flush_in_the_background_and_reopen_a_failed_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    books = [FakeBook(fail=True), FakeBook()]
    opened: list[str] = []

    def open_book(model: str) -> FakeBook:
        opened.append(model)
        return books[len(opened) - 1]

    monkeypatch.setattr(evidence_book, "open_book", open_book)
    evidence = EvidenceAccumulator()

    async def run() -> None:
        task = evidence_book.flush_periodically("toy", evidence, period_s=0.01)
        evidence.request(1, 200, 1.0)
        await until(lambda: bool(books[0].received))  # taken by a book that then fails
        await asyncio.sleep(0.05)  # idle periods: nothing to send, no book opened
        evidence.request(2, 200, 1.0)
        await until(lambda: bool(books[1].received))
        assert not task.done()
        task.cancel()

    asyncio.run(run())
    assert opened == ["toy", "toy"] and len(books[0].received) == 1
    assert [r.version for r in books[1].received[0]] == [2]
