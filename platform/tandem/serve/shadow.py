"""The shadow's side of the request path: mirrored requests re-run on the shadow version in
the background, compared with what the live version answered, never in front of it.

``ModelService`` puts a ``Mirrored`` request here after the live response is built; the
results go to a sink (the replica's metrics and evidence).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tandem.models import ModelRunner, Outputs
from tandem.preprocess import Raw
from tandem.serve.batching import split_outputs
from tandem.serve.evidence import ShadowResult, compare_outputs

ShadowSink = Callable[[ShadowResult], None]
"""Receives each mirrored request's result, on the event loop (metrics, evidence)."""
SHADOW_GATHER_S = 0.05
"""How long mirrored requests gather before their shadow pass (a full batch goes at once)."""
SHADOW_QUEUE_LIMIT = 256
"""Mirrored requests waiting for the shadow; past it new ones are dropped (and counted), so
a shadow that falls behind costs evidence, never memory or live latency."""
SHADOW_QUEUE_BYTES = 64 << 20
"""Prepared arrays and live outputs the waiting mirrored requests may hold, in all; a
request that would pass it is dropped too (large images fill it long before the count)."""
SHADOW_NICE = 10
"""Scheduler niceness of the shadow thread (Linux): the live path's threads go first."""
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mirrored:
    """One request for the shadow to re-run: what the live version saw and answered."""

    live: ModelRunner
    shadow: ModelRunner
    raws: list[Raw]
    arrays: list[np.ndarray]
    """The live version's prepared arrays, reused when the shadow prepares inputs alike."""
    outputs: Outputs
    """The live answer's outputs; the response was built from them before mirroring."""

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays) + sum(v.nbytes for v in self.outputs.values())


class ShadowQueue:
    """Re-runs mirrored requests on their shadow version, behind the live path.

    Never in front of a live request: mirrored requests wait in their own bounded queue
    (not the live batch queue), and one drain task runs them only after yielding to the
    event loop, a batch at a time, in one worker thread whose scheduler priority is
    lowered. A thread rather than the event loop, because a forward pass on the loop would
    block every live request behind it for its whole duration; in the thread, torch
    releases the GIL during its kernels and the live path keeps running (the two share
    the replica's cores, which the lowered priority settles in the live path's favour).
    Every failure becomes an ``error`` result for the sink, never an exception.
    """

    def __init__(self, sink: ShadowSink, batch: int) -> None:
        self._sink = sink
        self._batch = batch
        self._queue: deque[Mirrored] = deque()
        self._bytes = 0
        self._task: asyncio.Task[None] | None = None
        # Threads start on the first submit, so a service with no shadow has none.
        self._thread = ThreadPoolExecutor(1, "tandem-shadow", initializer=_lower_priority)
        self._reported: set[int] = set()
        """Shadow versions whose failure is already logged (once each, not per request)."""

    def put(self, mirrored: Mirrored) -> None:
        """Queue one request (called on the event loop, after its response is built)."""
        size = mirrored.nbytes()
        if len(self._queue) >= SHADOW_QUEUE_LIMIT or self._bytes + size > SHADOW_QUEUE_BYTES:
            self._sink(ShadowResult(mirrored.live.version, mirrored.shadow.version, "dropped"))
            return
        self._queue.append(mirrored)
        self._bytes += size
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def settled(self) -> None:
        """Until every queued request has been re-run and reported."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            # Gather mirrored requests for a moment (unless a full batch waits): one pass
            # over many costs the live path one thread hand-off and GIL contention, not
            # one per request; meanwhile live requests waiting on the loop go first.
            if len(self._queue) < self._batch:
                await asyncio.sleep(SHADOW_GATHER_S)
            batch = self._take()
            results = await loop.run_in_executor(self._thread, self._run, batch)
            for result in results:
                self._sink(result)

    def _take(self) -> list[Mirrored]:
        batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
        self._bytes -= sum(item.nbytes() for item in batch)
        return batch

    def _run(self, batch: list[Mirrored]) -> list[ShadowResult]:
        """In the worker thread: one forward pass per (live, shadow) pair of runners."""
        groups: dict[tuple[int, int], list[Mirrored]] = {}
        for item in batch:
            groups.setdefault((id(item.live), id(item.shadow)), []).append(item)
        return [result for items in groups.values() for result in self._run_group(items)]

    def _run_group(self, items: list[Mirrored]) -> list[ShadowResult]:
        live, shadow = items[0].live, items[0].shadow
        started = time.perf_counter()
        # Arrays prepared with the live version's fitted statistics are the shadow's only
        # if it prepares inputs the same way; otherwise it prepares its own (a value it
        # cannot use fails that request's comparison alone).
        same = shadow.manifest.inputs == live.manifest.inputs
        results, ready = [], []
        for item in items:
            try:
                ready.append((item, item.arrays if same else shadow.prepare(item.raws)))
            except Exception:
                results.append(self._failed(item))
        if not ready:
            return results
        try:
            columns = zip(*(arrays for _, arrays in ready), strict=True)
            outputs = shadow.forward([np.concatenate(column) for column in columns])
            latency_ms = (time.perf_counter() - started) * 1000
            pieces = split_outputs(outputs, [len(arrays[0]) for _, arrays in ready])
            return results + [
                compare_outputs(live.version, shadow.version, item.outputs, piece, latency_ms)
                for (item, _), piece in zip(ready, pieces, strict=True)
            ]
        except Exception:
            return results + [self._failed(item) for item, _ in ready]

    def _failed(self, item: Mirrored) -> ShadowResult:
        """An ``error`` result; the first failure of each shadow version is logged."""
        shadow = item.shadow
        if shadow.version not in self._reported:
            self._reported.add(shadow.version)
            logger.warning(
                "shadow v%d of %s failed on a mirrored request (failures are counted as "
                "shadow errors; only the first is logged)",
                shadow.version,
                shadow.manifest.name,
                exc_info=True,
            )
        return ShadowResult(item.live.version, shadow.version, "error")


def _lower_priority() -> None:
    """Runs in the shadow thread: raise its niceness (Linux takes a thread id here)."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
