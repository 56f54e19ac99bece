"""Batch policies: fixed sizes, or sizes chosen online to hold a p99 latency target.

``AdaptiveBatching`` is additive-increase / multiplicative-decrease on the latency of recent
batches, as in Clipper (Crankshaw et al., NSDI 2017): grow the batch cap by one while the
tail stays well under the target, cut it by 30% when the tail goes over. Pure Python and
deterministic: the same reports give the same decisions, so it is tested with a simulated
queue and synthetic latency models, without a clock or an event loop.

Departures from plain AIMD, each for a measured reason (see the unit tests' simulator):

- Slow start: the increase doubles the cap while even twice the observed figure would
  fit under the headroom. A forward pass has a fixed cost, so twice the batch costs at
  most twice the time; a cold replica reaches a useful cap in a few windows (1 → 16 in
  four) instead of queueing behind a cap of 1 (TCP's slow start, without the overshoot).
- Backlog: when some batch in the window left requests queued, the arrivals outran the
  replica at this cap and the excess latency is queueing, which a smaller cap makes worse
  (its fixed cost spread over fewer requests: lower throughput, a longer queue; plain
  AIMD spirals down to a cap of 1 under overload). The cap then follows what one batch
  costs instead: it grows while a batch cycle (forward pass plus the loop's other work
  before the next batch) fits the headroom, and is cut only when one cycle alone exceeds
  the target, so that even the batch's own requests, unqueued, would miss it.
- The wait is 0 once the queue fills every batch by itself: waiting then only adds latency.
  Otherwise it is one forward pass (the window's median): the requests that reached the
  socket while the last batch ran join the next one, and a quiet replica pays at most one
  forward pass more. (Half of what the target leaves after the forward pass, the first
  design, measured p50s of 12-17 ms on a 3 ms model and half the default's capacity.)
- The target is end to end, but the replica sees only its own part (queue wait and forward
  pass): it holds that part under ``REPLICA_SHARE`` of the target and leaves the rest to
  the HTTP path it cannot time (parsing, proxies, the network; ~5 ms of 25 here).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from tandem.serve.batcher import BatchReport
from tandem.specs import BatchingSpec

WINDOW = 16
"""Batches observed at one setting before the controller decides (p99 of 16 is their worst:
deliberately conservative, one slow batch is enough to back off)."""
HEADROOM = 0.8
"""The cap grows only while the window's p99 is under this share of the budget."""
DECREASE = 0.7
"""A cut multiplies the cap by this (and removes at least one)."""
REPLICA_SHARE = 0.6
"""Share of the end-to-end target the replica's own p99 (queue wait + forward pass) aims at."""


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile (the maximum below 100 values)."""
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@dataclass(frozen=True)
class FixedBatching:
    """The spec's sizes, unchanged whatever the traffic does."""

    max_batch_size: int
    max_wait_s: float

    def observe(self, report: BatchReport[Any]) -> None:
        """Fixed sizes learn nothing (here so a replica can feed either policy)."""


class AdaptiveBatching:
    """Chooses ``max_batch_size`` (1 … ``ceiling``) and ``max_wait_s`` (0 … ``wait_ceiling_s``)
    to maximise throughput while requests stay under ``target_s`` end to end.

    The replica's budget is ``replica_share`` × ``target_s``. Feed it every batch's report
    (``observe``); every ``window`` batches it decides:

    - backlog (some batch left requests queued): × ``decrease`` when the cycle p99
      (start-to-start time of back-to-back batches) > budget; +1 when it is ≤ headroom ×
      budget (×2 while twice it is);
    - otherwise: × ``decrease`` when the latency p99 (wait + compute of each batch's worst
      request) > budget; +1 when it is ≤ headroom × budget (×2 while twice it is) and
      some batch reached the cap (a cap nothing presses against is not raised, so a burst
      after a quiet spell meets a cap that was measured);
    - wait: 0 when every batch was full without waiting; else the median forward pass, at
      most the ceiling.
    """

    def __init__(
        self,
        target_s: float,
        ceiling: int,
        wait_ceiling_s: float,
        *,
        window: int = WINDOW,
        headroom: float = HEADROOM,
        decrease: float = DECREASE,
        replica_share: float = REPLICA_SHARE,
    ) -> None:
        assert target_s > 0 and ceiling >= 1 and wait_ceiling_s >= 0 and window >= 1
        assert 0 < headroom <= 1 and 0 < decrease < 1 and 0 < replica_share <= 1
        self.target_s = target_s
        self.budget_s = replica_share * target_s
        """What the replica's own p99 (queue wait + forward pass) aims at."""
        self.ceiling = ceiling
        self.wait_ceiling_s = wait_ceiling_s
        self._window = window
        self._headroom = headroom
        self._decrease = decrease
        # Start small and safe; under load the cap doubles per window while that fits. No
        # wait until a window has timed the forward pass.
        self.max_batch_size = 1
        self.max_wait_s = 0.0
        self._reset_window()

    def _reset_window(self) -> None:
        # Cycles are timed within a window only: one spanning a change measured the old cap.
        self._last_start: float | None = None
        self._last_backlog = 0
        self._latencies: list[float] = []
        self._computes: list[float] = []
        # Start-to-start time of back-to-back batches: the forward pass plus whatever else
        # the loop did between them (parsing the requests), i.e. what a queued request waits.
        self._cycles: list[float] = []
        self._backlogged = False
        self._reached_cap = False
        self._all_full_unheld = True

    def observe(self, report: BatchReport[Any]) -> None:
        """Take one batch's report; decide when the window is complete."""
        self._latencies.append(report.latency_s)
        self._computes.append(report.compute_s)
        if self._last_start is not None and self._last_backlog > 0 and not report.held:
            self._cycles.append(report.started_s - self._last_start)
        self._last_start, self._last_backlog = report.started_s, report.backlog
        full = report.size >= self.max_batch_size
        self._backlogged |= report.backlog > 0
        self._reached_cap |= full
        self._all_full_unheld &= full and not report.held
        if len(self._latencies) >= self._window:
            self._decide()
            self._reset_window()

    def _decide(self) -> None:
        target, cap = self.budget_s, self.max_batch_size
        room = self._headroom * target
        if self._backlogged:
            cycle = p99(self._cycles) if self._cycles else p99(self._computes)
            if cycle > target:
                cap = self._cut(cap)
            elif cycle <= room:
                cap += cap if 2 * cycle <= room else 1
        else:
            latency = p99(self._latencies)
            if latency > target:
                cap = self._cut(cap)
            elif latency <= room and self._reached_cap:
                cap += cap if 2 * latency <= room else 1
        self.max_batch_size = min(max(cap, 1), self.ceiling)
        if self._all_full_unheld:
            self.max_wait_s = 0.0
        else:
            self.max_wait_s = min(self.wait_ceiling_s, statistics.median(self._computes))

    def _cut(self, cap: int) -> int:
        return min(math.floor(cap * self._decrease), cap - 1)


def batching_policy(spec: BatchingSpec) -> FixedBatching | AdaptiveBatching:
    """The policy a replica runs: adaptive when ``target_p99_ms`` is set (``max_batch_size``
    and ``max_wait_ms`` are then its ceilings), else the fixed sizes."""
    wait_s = spec.max_wait_ms / 1000
    if spec.target_p99_ms is None:
        return FixedBatching(spec.max_batch_size, wait_s)
    return AdaptiveBatching(spec.target_p99_ms / 1000, spec.max_batch_size, wait_s)
