"""One retry schedule for every call to Convex.

An outage is one event, not one per job: when Convex stops answering, the
claim loop and every job's mirror share this schedule. While Convex is down
the calls go one at a time through `attempt()`, each after the current
delay (0.5 s, doubling, capped), so two hundred jobs waiting for Convex make
one probe per delay rather than two hundred. The first answer (even a
refusal: Convex is up) ends the outage, and the queued calls go at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    def __init__(
        self,
        *,
        base_s: float = 0.5,
        max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._clock = clock
        self.delay = 0.0
        """Current delay between probes; 0 while Convex answers."""
        self.failures = 0
        """Failed calls in the current outage."""
        self._until = 0.0
        self._probe: asyncio.Lock | None = None

    @property
    def down(self) -> bool:
        return self.delay > 0

    def failed(self) -> float | None:
        """Record a failed call; the new delay, or None if this outage's schedule
        already accounts for it (a call sent before the current delay began)."""
        now = self._clock()
        if now < self._until:
            return None
        self.delay = min(self.max_s, self.base_s if self.delay == 0 else self.delay * 2)
        # Jitter, so that bridges of several clusters do not probe in step.
        self._until = now + self.delay * random.uniform(0.8, 1.0)  # noqa: S311
        self.failures += 1
        return self.delay

    def succeeded(self) -> int:
        """Record an answer; how many calls had failed in the outage it ends."""
        failures = self.failures
        self.delay, self._until, self.failures = 0.0, 0.0, 0
        return failures

    async def attempt(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` now if Convex answers, else as the next probe."""
        if not self.down:
            return await call()
        if self._probe is None:
            self._probe = asyncio.Lock()
        async with self._probe:
            remaining = self._until - self._clock()
            if self.down and remaining > 0:
                await asyncio.sleep(remaining)
            return await call()
