"""A de-duplicating, per-key serialised work queue with retry backoff.

The same shape as client-go's workqueue: a key waiting in the queue is not
added twice, a key being processed is never processed by two workers at
once (it is re-queued after the current run if it changed meanwhile), and a
failed key comes back after an exponential backoff. A handler may return a
delay in seconds to be called again for the key after it (client-go's
`RequeueAfter`): something to look at again later that is not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        handler: Callable[[K], Awaitable[float | None]],
        *,
        workers: int,
        base_delay: float = 0.2,
        max_delay: float = 30.0,
        on_done: Callable[[K, float, bool], None] | None = None,
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._base = base_delay
        self._max = max_delay
        self._on_done = on_done
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_later(delay, fire)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"reconcile-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            started = time.perf_counter()
            ok = False
            try:
                again = await self._handler(key)
                ok = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._max, self._base * 2 ** (failures - 1))
                log.warning(
                    "reconcile of %s failed (try %d), retrying in %.1fs: %s",
                    key,
                    failures,
                    delay,
                    exc,
                )
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                if again is not None:
                    self.add_after(key, again)
            finally:
                self._active.discard(key)
                if self._on_done is not None:
                    self._on_done(key, time.perf_counter() - started, ok)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
