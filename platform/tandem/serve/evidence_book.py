"""The Ray seam of rollout evidence: one named actor per model collects every replica's
records; a rollout driver reads a summary of them. All Ray calls for evidence are here.

Replicas flush their ``EvidenceAccumulator`` to the book about once a second from a
background task (``flush_periodically``), fire and forget: a failed flush is logged and
its records dropped, and nothing on the request path ever waits for the book. The book is
detached (it outlives the replicas that created it, so a rollout's evidence survives a
replica restart) and lives on the serve pool without reserving a CPU; ``control.undeploy``
deletes it with the model's app (``delete_book``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from typing import Any

import ray

from tandem.cluster import pool_resources
from tandem.serve.evidence import EvidenceAccumulator, EvidenceLog, Record, RolloutEvidence
from tandem.specs import Pool

NAMESPACE = "tandem"
FLUSH_PERIOD_S = 1.0
READ_TIMEOUT_S = 30.0
# Serve writes this logger to the replica's log file (logs/serve/replica_*.log).
logger = logging.getLogger("ray.serve")


def book_name(model: str) -> str:
    return f"tandem-evidence-{model}"


class EvidenceBook:
    """Actor state: the model's records of the last ``RETENTION_S`` seconds (bounded)."""

    def __init__(self) -> None:
        self._log = EvidenceLog()

    def add(self, records: list[Record]) -> None:
        self._log.add(records, time.time())

    def summary(self, since: float) -> RolloutEvidence:
        return self._log.summary(since)


BookActor: Any = ray.remote(EvidenceBook)  # an ActorClass, untyped


def open_book(model: str) -> Any:
    """The model's book, created on the serve pool by the first caller (blocks on the GCS:
    call it off the event loop)."""
    return BookActor.options(
        name=book_name(model),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        resources=pool_resources(Pool.SERVE),
    ).remote()


class Flusher:
    """Sends one replica's accumulator to its model's book every ``period_s``."""

    def __init__(self, model: str, evidence: EvidenceAccumulator, period_s: float) -> None:
        self._model = model
        self._evidence = evidence
        self._period_s = period_s
        self._book: Any = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            records = self._evidence.flush()
            if not records:
                continue
            try:
                if self._book is None:
                    self._book = await asyncio.to_thread(open_book, self._model)
                sent: Future[None] = self._book.add.remote(records).future()
                sent.add_done_callback(self._sent)
            except Exception:
                logger.warning("evidence flush of %s failed; dropped", self._model, exc_info=True)
                self._book = None

    def _sent(self, sent: Future[None]) -> None:
        """On a Ray thread, once the book took (or failed to take) a flush."""
        error = sent.exception()
        if error is not None:
            logger.warning("evidence flush of %s failed (%s); dropped", self._model, error)
            self._book = None  # reopen next time: the book may have died and been recreated


def flush_periodically(
    model: str, evidence: EvidenceAccumulator, period_s: float = FLUSH_PERIOD_S
) -> asyncio.Task[None]:
    """Start the replica's flush task on the running event loop (keep the task)."""
    return asyncio.get_running_loop().create_task(Flusher(model, evidence, period_s).run())


def rollout_evidence(model: str, since: float) -> RolloutEvidence:
    """What ``model``'s replicas recorded since ``since`` (wall-clock ``time.time()``): per
    version and per shadow. Call after ``session.connect``; empty when no replica of the
    model has flushed yet (no book)."""
    try:
        book = ray.get_actor(book_name(model), namespace=NAMESPACE)
    except ValueError:
        return RolloutEvidence(since=since)
    evidence: Any = ray.get(book.summary.remote(since), timeout=READ_TIMEOUT_S)
    assert isinstance(evidence, RolloutEvidence)
    return evidence


def delete_book(model: str) -> None:
    """Kill ``model``'s book if it exists (after its app is gone, so no replica recreates
    it)."""
    try:
        book = ray.get_actor(book_name(model), namespace=NAMESPACE)
    except ValueError:
        return
    ray.kill(book)
