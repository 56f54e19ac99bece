"""The replica's micro-batcher on a real asyncio loop: how batches form, fail and wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tandem.serve.batcher import BatchReport, MicroBatcher


@dataclass
class Policy:
    max_batch_size: int = 32
    max_wait_s: float = 0.0


class Recorder:
    """A handler that doubles numbers, fails on negative ones, and remembers its batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.reports: list[BatchReport[int]] = []

    def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        return [ValueError(f"bad item {i}") if i < 0 else 2 * i for i in items]

    def observe(self, report: BatchReport[int]) -> None:
        self.reports.append(report)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_requests_in_one_loop_step_share_one_batch() -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        batcher = MicroBatcher(recorder, Policy())

        async def client(i: int) -> int:
            return await batcher.submit(i)

        return await asyncio.gather(*(client(i) for i in range(10)))

    assert run(main) == [2 * i for i in range(10)]
    assert recorder.batches == [list(range(10))]


def test_batches_never_exceed_the_limit_and_keep_order() -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        batcher = MicroBatcher(recorder, Policy(max_batch_size=8))
        return await asyncio.gather(*(batcher.submit(i) for i in range(50)))

    assert run(main) == [2 * i for i in range(50)]
    assert [len(b) for b in recorder.batches] == [8, 8, 8, 8, 8, 8, 2]
    assert [i for b in recorder.batches for i in b] == list(range(50))


def test_a_full_queue_flushes_without_waiting() -> None:
    recorder = Recorder()

    async def main() -> tuple[list[int], float]:
        batcher = MicroBatcher(recorder, Policy(max_batch_size=4, max_wait_s=30.0))
        started = time.perf_counter()
        first = [batcher.submit(i) for i in range(2)]
        await asyncio.sleep(0)  # the flush runs, finds 2 of 4 and starts waiting
        await asyncio.sleep(0)
        assert not any(f.done() for f in first)
        rest = [batcher.submit(i) for i in range(2, 4)]  # now full: flush at once
        results = await asyncio.gather(*first, *rest)
        return results, time.perf_counter() - started

    results, elapsed = run(main)
    assert results == [0, 2, 4, 6]
    assert elapsed < 5.0  # nowhere near the 30 s wait
    assert recorder.batches == [[0, 1, 2, 3]]


def test_wait_is_honoured_and_timed_from_the_first_request() -> None:
    recorder = Recorder()

    async def main() -> tuple[float, float]:
        batcher = MicroBatcher(
            recorder, Policy(max_batch_size=8, max_wait_s=0.05), recorder.observe
        )
        started = time.perf_counter()
        first = batcher.submit(1)
        await asyncio.sleep(0.01)
        second = batcher.submit(2)  # joins the waiting batch, does not restart the clock
        await asyncio.gather(first, second)
        return time.perf_counter() - started, recorder.reports[0].waits_s[0]

    elapsed, first_wait = run(main)
    assert recorder.batches == [[1, 2]]
    assert 0.045 <= first_wait <= elapsed < 2.0
    report = recorder.reports[0]
    assert report.held and report.size == 2 and report.backlog == 0
    assert report.waits_s[0] > report.waits_s[1]


def test_one_batchs_failure_fails_only_its_requests() -> None:
    def handler(items: list[int]) -> list[int | Exception]:
        if 13 in items:
            raise RuntimeError("forward pass failed")
        return [2 * i for i in items]

    async def main() -> list[Any]:
        batcher = MicroBatcher(handler, Policy(max_batch_size=2))
        return await asyncio.gather(
            *(batcher.submit(i) for i in (1, 2, 13, 4, 5, 6)), return_exceptions=True
        )

    results = run(main)
    assert results[:2] == [2, 4] and results[4:] == [10, 12]
    assert all(isinstance(r, RuntimeError) for r in results[2:4])


def test_an_exception_result_fails_only_that_request() -> None:
    recorder = Recorder()

    async def main() -> list[Any]:
        batcher = MicroBatcher(recorder, Policy())
        return await asyncio.gather(
            *(batcher.submit(i) for i in (1, -1, 3)), return_exceptions=True
        )

    first, failed, third = run(main)
    assert (first, third) == (2, 6)
    assert isinstance(failed, ValueError) and "bad item -1" in str(failed)
    assert recorder.batches == [[1, -1, 3]]


def test_a_handler_returning_the_wrong_count_fails_the_batch() -> None:
    async def main() -> list[Any]:
        batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: items[:-1], Policy())
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    results = run(main)
    assert all(isinstance(r, RuntimeError) and "2 results for 3 items" in str(r) for r in results)


def test_cancelled_requests_are_skipped() -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        batcher = MicroBatcher(recorder, Policy(max_batch_size=8, max_wait_s=0.02))
        futures = [batcher.submit(i) for i in range(4)]
        futures[0].cancel()  # the head: the wait restarts from the next live request
        futures[2].cancel()
        return await asyncio.gather(futures[1], futures[3])

    assert run(main) == [2, 6]
    assert recorder.batches == [[1, 3]]


def test_a_client_that_goes_away_while_queued_is_skipped() -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        batcher = MicroBatcher(recorder, Policy(max_batch_size=8, max_wait_s=0.05))

        async def client(i: int) -> int:
            return await batcher.submit(i)

        tasks = [asyncio.create_task(client(i)) for i in range(3)]
        for _ in range(3):  # the clients submit, the flush finds 3 of 8 and waits
            await asyncio.sleep(0)
        assert len(batcher) == 3 and not recorder.batches
        tasks[1].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        return await asyncio.gather(tasks[0], tasks[2])

    assert run(main) == [0, 4]
    assert recorder.batches == [[0, 2]]


def test_everything_withdrawn_runs_nothing() -> None:
    recorder = Recorder()

    async def main() -> int:
        batcher = MicroBatcher(recorder, Policy())
        for future in [batcher.submit(i) for i in range(3)]:
            future.cancel()
        await asyncio.sleep(0)  # the flush finds only withdrawn requests
        assert len(batcher) == 0
        return await batcher.submit(7)  # the batcher still works afterwards

    assert run(main) == 14
    assert recorder.batches == [[7]]


def test_the_observer_sees_each_batch() -> None:
    recorder = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(recorder, Policy(max_batch_size=3), recorder.observe)
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    run(main)
    first, second = recorder.reports
    assert (first.items, first.backlog, first.held) == ([0, 1, 2], 2, False)
    assert (second.items, second.backlog) == ([3, 4], 0)
    assert len(first.waits_s) == 3 and all(w >= 0 for w in first.waits_s)
    assert first.compute_s >= 0 and second.started_s >= first.started_s + first.compute_s
    assert first.latency_s == max(first.waits_s) + first.compute_s


def test_an_observer_that_raises_does_not_stall_the_queue() -> None:
    recorder = Recorder()
    errors: list[Any] = []

    def observer(report: BatchReport[int]) -> None:
        raise RuntimeError("metrics broke")

    async def main() -> list[int]:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: errors.append(context)
        )
        batcher = MicroBatcher(recorder, Policy(max_batch_size=2), observer)
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert run(main) == [0, 2, 4, 6, 8]
    assert len(errors) == 3 and all("metrics broke" in str(e["exception"]) for e in errors)


def test_the_policy_is_read_at_every_flush() -> None:
    recorder = Recorder()
    policy = Policy(max_batch_size=2)

    async def main() -> None:
        batcher = MicroBatcher(recorder, policy)
        await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        policy.max_batch_size = 3
        await asyncio.gather(*(batcher.submit(i) for i in range(4)))
        batcher.policy = Policy(max_batch_size=1)
        await asyncio.gather(*(batcher.submit(i) for i in range(2)))

    run(main)
    assert [len(b) for b in recorder.batches] == [2, 2, 3, 1, 1, 1]
