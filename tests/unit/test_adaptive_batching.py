"""SLO-aware batching: the AIMD controller against a simulated replica queue with synthetic
latency models (compute = fixed cost + per-request cost × batch size), and its spec."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tandem.errors import SpecError
from tandem.serve.adaptive import (
    REPLICA_SHARE,
    AdaptiveBatching,
    FixedBatching,
    batching_policy,
    p99,
)
from tandem.serve.batcher import BatchReport
from tandem.specs.base import parse
from tandem.specs.deployment import BatchingSpec, DeploymentSpec

MS = 0.001
TARGET_S = 25 * MS
BUDGET_S = REPLICA_SHARE * TARGET_S
"""What the replica holds its own p99 to: the simulator has no HTTP path, so this is all."""


def linear(fixed_ms: float, per_item_ms: float) -> Callable[[int], float]:
    return lambda n: (fixed_ms + per_item_ms * n) * MS


def largest_fitting(cycle: Callable[[int], float], budget_s: float) -> int:
    """Largest batch whose cycle (forward pass and the loop's other work) fits the budget."""
    return max(n for n in range(1, 1000) if cycle(n) <= budget_s)


@dataclass
class Run:
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, latency) of every request served."""
    caps: list[int] = field(default_factory=list)
    """The cap in force at each batch."""
    waits: list[float] = field(default_factory=list)
    """The wait in force at each batch."""
    dropped: int = 0

    def p99_after(self, start_s: float) -> float:
        return p99([latency for arrival, latency in self.latencies if arrival >= start_s])


def simulate(
    policy: AdaptiveBatching | FixedBatching,
    compute: Callable[[int], float],
    rate_per_s: float,
    duration_s: float,
    *,
    parse_s: float = 0.0,
    max_queue: int = 256,
    seed: int = 0,
) -> Run:
    """One replica's loop: Poisson arrivals, the batcher's rules (flush when full or when the
    first request's wait is spent), a blocking forward pass, then ``parse_s`` per request
    of other loop work. Requests beyond ``max_queue`` are refused (admission control)."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = rng.expovariate(rate_per_s)
    while t < duration_s:
        arrivals.append(t)
        t += rng.expovariate(rate_per_s)
    run, queue, now, i, held = Run(), deque[float](), 0.0, 0, False
    while i < len(arrivals) or queue:
        while i < len(arrivals) and arrivals[i] <= now:
            if len(queue) < max_queue:
                queue.append(arrivals[i])
            else:
                run.dropped += 1
            i += 1
        if not queue:
            now = arrivals[i]
            continue
        cap, wait_s = policy.max_batch_size, policy.max_wait_s
        due = queue[0] + wait_s
        if wait_s > 0 and len(queue) < cap and now < due:
            held = True
            now = min(due, arrivals[i]) if i < len(arrivals) else due
            continue
        batch = [queue.popleft() for _ in range(min(cap, len(queue)))]
        compute_s = compute(len(batch))
        waits = [now - arrival for arrival in batch]
        run.latencies += [(arrival, now + compute_s - arrival) for arrival in batch]
        run.caps.append(cap)
        run.waits.append(wait_s)
        policy.observe(BatchReport(batch, waits, now, compute_s, len(queue), held))
        held = False
        now += compute_s + parse_s * len(batch)
    return run


def adaptive(ceiling: int = 256, max_wait_ms: float = 2.0) -> AdaptiveBatching:
    return AdaptiveBatching(TARGET_S, ceiling, max_wait_ms * MS)


def test_overload_converges_near_the_largest_batch_that_fits() -> None:
    compute = linear(1.0, 0.25)
    policy = adaptive()
    run = simulate(policy, compute, rate_per_s=10_000, duration_s=8)
    low, high = largest_fitting(compute, 0.8 * BUDGET_S), largest_fitting(compute, BUDGET_S)
    assert (low, high) == (44, 56)
    assert all(low <= cap <= high for cap in run.caps[-100:])
    # The queue fills every batch, so waiting would only cost (until arrivals stop and the
    # last two windows drain it).
    assert not any(run.waits[:-32])


def test_overload_counts_the_loops_other_work_per_request() -> None:
    compute, parse_s = linear(1.0, 0.25), 0.1 * MS

    def cycle(n: int) -> float:
        return compute(n) + parse_s * n

    policy = adaptive()
    run = simulate(policy, compute, rate_per_s=10_000, duration_s=8, parse_s=parse_s)
    low, high = largest_fitting(cycle, 0.8 * BUDGET_S), largest_fitting(cycle, BUDGET_S)
    assert all(low <= cap <= high for cap in run.caps[-100:])


def test_backs_off_when_the_model_slows() -> None:
    policy = adaptive()
    simulate(policy, linear(1.0, 0.25), rate_per_s=10_000, duration_s=8)
    assert policy.max_batch_size >= 44
    slower = linear(1.0, 0.5)
    run = simulate(policy, slower, rate_per_s=10_000, duration_s=8, seed=1)
    low, high = largest_fitting(slower, 0.8 * BUDGET_S), largest_fitting(slower, BUDGET_S)
    assert min(run.caps[:64]) < high  # cut within a few windows, not after a slow climb
    assert all(low <= cap <= high for cap in run.caps[-100:])


def test_a_load_it_can_serve_holds_the_target() -> None:
    compute = linear(1.0, 0.25)  # 800 req/s one at a time, 3,000 needs batches of ≥ 12
    policy = adaptive()
    run = simulate(policy, compute, rate_per_s=3000, duration_s=10)
    assert run.dropped == 0
    assert run.p99_after(2.0) <= TARGET_S
    assert max(run.caps[-100:]) >= 12


def test_a_quiet_replica_keeps_a_small_cap_and_waits_within_budget() -> None:
    compute = linear(1.0, 0.25)
    policy = adaptive(max_wait_ms=50)
    run = simulate(policy, compute, rate_per_s=100, duration_s=20)
    # The cap follows the bursts that reach it, far from the ceiling.
    assert max(run.caps) <= 16
    assert run.p99_after(2.0) <= BUDGET_S
    # One forward pass of the sizes it saw (the ceiling, 50 ms, is far higher).
    assert compute(1) <= policy.max_wait_s <= compute(16)


def test_the_wait_is_one_forward_pass_at_most_its_ceiling() -> None:
    policy = adaptive(max_wait_ms=2)
    assert policy.max_wait_s == 0  # nothing timed yet
    simulate(policy, linear(1.0, 0.25), rate_per_s=100, duration_s=5)
    assert 1.25 * MS <= policy.max_wait_s < 2 * MS
    simulate(policy, linear(5.0, 0.25), rate_per_s=100, duration_s=5)
    assert policy.max_wait_s == 2 * MS


def test_same_observations_same_decisions() -> None:
    runs = [
        simulate(adaptive(), linear(2.0, 0.3), rate_per_s=2500, duration_s=3, seed=7)
        for _ in range(2)
    ]
    assert runs[0].caps == runs[1].caps


def report(
    size: int, latency_ms: float, *, backlog: int = 0, started_ms: float = 0.0
) -> BatchReport[int]:
    compute_ms = 1.0
    waits = [(latency_ms - compute_ms) * MS] * size
    return BatchReport(list(range(size)), waits, started_ms * MS, compute_ms * MS, backlog, False)


def window_of(policy: AdaptiveBatching, size: int, *latencies_ms: float) -> int:
    for latency_ms in latencies_ms:
        policy.observe(report(size, latency_ms))
    return policy.max_batch_size


def test_additive_increase_multiplicative_decrease() -> None:
    # The whole target for the replica, so the figures below read against 25 ms.
    policy = AdaptiveBatching(TARGET_S, ceiling=24, wait_ceiling_s=0.0, window=4, replica_share=1)
    assert window_of(policy, 1, 5, 5, 5, 5) == 2  # twice 5 ms fits 0.8 × 25 ms: double
    policy.max_batch_size = 10
    assert window_of(policy, 10, 12, 12, 12, 12) == 11  # fits, but twice would not: +1
    assert window_of(policy, 11, 5, 5, 5, 30) == 7  # one batch over is the p99: × 0.7
    assert window_of(policy, 7, 5, 5, 5, 22) == 7  # between headroom and target: hold
    assert window_of(policy, 3, 5, 5, 5, 5) == 7  # nothing reached the cap: not raised
    assert window_of(policy, 7, 5, 5, 5, 5) == 14
    assert window_of(policy, 14, 5, 5, 5, 5) == 24  # the ceiling
    policy.max_batch_size = 2
    assert window_of(policy, 2, 40, 40, 40, 40) == 1  # at least one less
    assert window_of(policy, 1, 40, 40, 40, 40) == 1  # never below one


def test_a_backlog_grows_the_cap_while_one_batch_cycle_fits() -> None:
    policy = AdaptiveBatching(TARGET_S, ceiling=64, wait_ceiling_s=0.0, window=4, replica_share=1)
    policy.max_batch_size = 8
    # Queueing far over the target, each batch 12 ms start to start: plain AIMD would cut
    # and serve fewer requests per second; the backlog rule adds capacity.
    for i in range(4):
        policy.observe(report(8, latency_ms=90, backlog=50, started_ms=12 * i))
    assert policy.max_batch_size == 9
    for i in range(4):  # 30 ms per batch: one batch alone misses the target
        policy.observe(report(9, latency_ms=90, backlog=50, started_ms=30 * i))
    assert policy.max_batch_size == 6


def test_fixed_batching_ignores_traffic() -> None:
    policy = FixedBatching(32, 0.002)
    policy.observe(report(32, latency_ms=500))
    assert (policy.max_batch_size, policy.max_wait_s) == (32, 0.002)


def test_policy_from_the_spec() -> None:
    fixed = batching_policy(BatchingSpec(max_batch_size=16, max_wait_ms=1))
    assert fixed == FixedBatching(16, 0.001)
    tuned = batching_policy(BatchingSpec(max_batch_size=16, max_wait_ms=4, target_p99_ms=25))
    assert isinstance(tuned, AdaptiveBatching)
    assert (tuned.target_s, tuned.ceiling, tuned.wait_ceiling_s) == (0.025, 16, 0.004)
    assert tuned.budget_s == pytest.approx(REPLICA_SHARE * 0.025)
    assert tuned.max_batch_size == 1 and tuned.max_wait_s == 0


@pytest.mark.parametrize("target", [0, 0.5, 10_001, "fast"])
def test_a_bad_target_names_the_field(target: object) -> None:
    data = {"model": "digits", "batching": {"target_p99_ms": target}}
    with pytest.raises(SpecError) as info:
        parse(DeploymentSpec, data, "deployment.yaml")
    assert any(p.startswith("batching.target_p99_ms:") for p in info.value.problems)


def test_target_is_off_by_default() -> None:
    assert BatchingSpec().target_p99_ms is None
    assert (
        parse(
            DeploymentSpec, {"model": "m", "batching": {"target_p99_ms": 25}}, "x"
        ).batching.target_p99_ms
        == 25
    )
