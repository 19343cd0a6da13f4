from __future__ import annotations

import asyncio
import itertools

from fondation_operator.workqueue import WorkQueue
from tests.cluster.objects import eventually


async def test_a_key_is_never_processed_twice_at_once_and_changes_are_not_lost() -> None:
    active: set[str] = set()
    overlaps = 0
    runs: list[str] = []
    release = asyncio.Event()

    async def handle(key: str) -> None:
        nonlocal overlaps
        if key in active:
            overlaps += 1
        active.add(key)
        runs.append(key)
        if len(runs) == 1:
            await release.wait()
        active.discard(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=4)
    queue.start()
    try:
        queue.add("a")
        await eventually(lambda: _true(runs == ["a"]), what="first run")
        for _ in range(5):
            queue.add("a")  # changed while being processed: one more run, not five
        release.set()
        await eventually(lambda: _true(runs.count("a") == 2 and not active), what="re-run")
        assert overlaps == 0
        assert len(queue) == 0
    finally:
        await queue.stop()
    assert runs == ["a", "a"]


async def test_failures_are_retried_with_backoff() -> None:
    calls = 0

    async def handle(key: str) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("API unavailable")

    done: list[bool] = []
    queue: WorkQueue[str] = WorkQueue(
        handle, workers=1, base_delay=0.01, on_done=lambda _k, _s, ok: done.append(ok)
    )
    queue.start()
    try:
        queue.add("k")
        await eventually(lambda: _true(done == [False, False, True]), what="third try")
    finally:
        await queue.stop()
    assert calls == 3


async def _true(value: bool) -> bool:
    return value


async def test_a_returned_delay_brings_the_key_back_without_counting_a_failure() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(key: str) -> float | None:
        runs.append(loop.time())
        return 0.05 if len(runs) < 3 else None

    done: list[bool] = []
    queue: WorkQueue[str] = WorkQueue(handle, workers=1, on_done=lambda _k, _s, ok: done.append(ok))
    queue.start()
    try:
        queue.add("k")
        await eventually(lambda: _true(len(runs) == 3), what="two requeues")
    finally:
        await queue.stop()
    assert done == [True, True, True]
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(runs))
