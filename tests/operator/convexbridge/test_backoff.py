"""One retry schedule for all calls to Convex during an outage."""

from __future__ import annotations

import asyncio

from fondation_operator.convexbridge.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_delays_double_up_to_the_cap_and_reset_on_an_answer() -> None:
    clock = Clock()
    backoff = Backoff(base_s=0.5, max_s=4.0, clock=clock)
    delays = []
    for _ in range(6):
        delays.append(backoff.failed())
        clock.now += 10  # each probe after the previous delay ran out
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.down
    assert backoff.succeeded() == 6
    assert not backoff.down
    assert backoff.failed() == 0.5


def test_calls_already_in_flight_do_not_stretch_the_schedule() -> None:
    clock = Clock()
    backoff = Backoff(base_s=1.0, max_s=30.0, clock=clock)
    assert backoff.failed() == 1.0
    # Twenty calls sent before the outage was noticed fail now: same outage.
    assert [backoff.failed() for _ in range(20)] == [None] * 20
    assert backoff.failures == 1


async def test_during_an_outage_one_probe_at_a_time() -> None:
    backoff = Backoff(base_s=0.05, max_s=0.05)
    backoff.failed()
    concurrent = 0
    most = 0

    async def call() -> int:
        nonlocal concurrent, most
        concurrent += 1
        most = max(most, concurrent)
        await asyncio.sleep(0.01)
        concurrent -= 1
        backoff.succeeded()
        return 1

    results = await asyncio.gather(*(backoff.attempt(call) for _ in range(10)))
    assert results == [1] * 10
    assert most == 1
    # Once Convex answers, calls no longer queue.
    assert not backoff.down
