"""A micro-batcher for one replica's event loop: requests queued in the same loop step share
a forward pass. Plain asyncio, no Ray.

Per request it costs a future, a deque append and a clock read; per batch one ``call_soon``
(and one ``call_later`` when the policy says wait). Ray's ``@serve.batch`` pays a signature
binding, a request/trace context and a queue ``await`` per request and a dozen Ray metric
updates per batch, which on a millisecond model is a visible share of the replica's CPU.

The handler is synchronous and runs on the event loop thread: the forward pass blocks the
loop, as it does under ``@serve.batch``, which on one core is the fastest arrangement (no
thread hand-off). Requests that arrive while it runs wait in the socket and join the next
batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatchPolicy(Protocol):
    """How big a batch may get and how long it may wait; read at every flush, so the values
    may change online (an adaptive controller, a reconfigure)."""

    @property
    def max_batch_size(self) -> int:
        """Most requests in one batch (≥ 1)."""
        ...

    @property
    def max_wait_s(self) -> float:
        """How long a batch's first request may wait for company (0: flush in the next loop
        step with whatever is queued)."""
        ...


@dataclass(frozen=True)
class BatchReport(Generic[T]):
    """What one flush did; handed to the batcher's observer after the futures are set."""

    items: list[T]
    """The requests that ran, in order (cancelled ones were skipped and are not here)."""
    waits_s: list[float]
    """Each request's time in the queue, from ``submit`` to the start of the forward pass."""
    started_s: float
    """``time.perf_counter()`` when the forward pass began."""
    compute_s: float
    """Time in the handler."""
    backlog: int
    """Requests still queued when this batch started (cancelled ones included): > 0 means
    the batch limit, not the arrivals, decided its size."""
    held: bool
    """The batch was not full when first due and waited for company (``max_wait_s``)."""

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def latency_s(self) -> float:
        """The worst request's time in the batcher: its queue wait plus the forward pass."""
        return max(self.waits_s) + self.compute_s


Handler = Callable[[list[T]], Sequence[R | Exception]]
"""Runs one batch: one result per item, in order; an ``Exception`` result fails that item."""
Observer = Callable[[BatchReport[T]], None]


class MicroBatcher(Generic[T, R]):
    """Batches ``submit``-ed items for ``handler`` on the running event loop.

    The first item into an empty queue schedules one flush with ``call_soon``, so every
    request submitted in the same loop step joins it. A flush that finds fewer items than
    ``policy.max_batch_size`` and a ``policy.max_wait_s`` not yet spent by the oldest item
    re-arms itself once with ``call_later``; filling the queue flushes at once. A flush that
    leaves items queued schedules the next one immediately.
    """

    def __init__(
        self,
        handler: Handler[T, R],
        policy: BatchPolicy,
        observer: Observer[T] | None = None,
    ) -> None:
        self._handler = handler
        self.policy = policy
        """Read at each flush; replace it (or let it change itself) to retune online."""
        self._observer = observer
        self._queue: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        # The one scheduled flush (call_soon or call_later), if any.
        self._pending: asyncio.Handle | None = None
        self._holding = False  # _pending is a call_later waiting for company
        self._held = False  # the batch at the head of the queue has waited

    def __len__(self) -> int:
        """Requests queued (cancelled ones included until a flush drops them)."""
        return len(self._queue)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves to its result (or raises its exception).
        Must be called on the event loop thread; cancelling the future withdraws the item."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future, perf_counter()))
        if self._pending is None:
            self._pending = loop.call_soon(self._flush)
        elif self._holding and len(self._queue) >= self.policy.max_batch_size:
            # Full while waiting for company: no reason to wait any longer.
            self._pending.cancel()
            self._holding = False
            self._pending = loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._pending = None
        self._holding = False
        queue = self._queue
        # Drop withdrawn requests at the head so the wait is timed from a live one.
        while queue and queue[0][1].cancelled():
            queue.popleft()
        if not queue:
            self._held = False
            return
        limit = self.policy.max_batch_size
        wait_s = self.policy.max_wait_s
        if wait_s > 0 and len(queue) < limit:
            remaining_s = queue[0][2] + wait_s - perf_counter()
            if remaining_s > 0:
                assert self._loop is not None  # set by the submit that queued the head
                self._pending = self._loop.call_later(remaining_s, self._flush)
                self._holding = True
                self._held = True
                return
        self._run(limit)

    def _run(self, limit: int) -> None:
        queue = self._queue
        items: list[T] = []
        futures: list[asyncio.Future[R]] = []
        arrivals: list[float] = []
        while queue and len(items) < limit:
            item, future, arrival = queue.popleft()
            if future.cancelled():  # the client went away
                continue
            items.append(item)
            futures.append(future)
            arrivals.append(arrival)
        if not items:  # everything left was withdrawn
            self._held = False
            return
        started = perf_counter()
        try:
            results = self._handler(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(items)} items"
                )
        except Exception as error:  # fails this batch's requests only
            results = [error] * len(items)
        compute_s = perf_counter() - started
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        held, self._held = self._held, False
        if queue:
            assert self._loop is not None
            self._pending = self._loop.call_soon(self._flush)
        # Last, after the next flush is scheduled: an observer that raises is reported by
        # the loop's exception handler and cannot stall the queue.
        if self._observer is not None:
            waits = [started - arrival for arrival in arrivals]
            self._observer(BatchReport(items, waits, started, compute_s, len(queue), held))
