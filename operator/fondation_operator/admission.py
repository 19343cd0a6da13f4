"""The cluster-wide cap on concurrent runner Jobs, with a FIFO queue.

Jobs in flight are the unfinished Jobs the operator has observed plus the
ones it has just decided to create and not yet seen come back through its
watch (reservations). Counting Jobs rather than running pods is deliberate:
a Pending pod waiting for a node is in flight too, which is what lets a
cluster autoscaler add nodes for exactly the admitted work.

kopf fills its indices from a full listing before any handler runs, so after
a restart the count starts complete and the cap holds across crashes.
"""

from __future__ import annotations

from collections.abc import Iterable

from fondation_operator.observed import Key, ObservedAnalysisJob


class Admission:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self._reserved: set[Key] = set()

    @property
    def unlimited(self) -> bool:
        return self.max_concurrent <= 0

    def reserve(self, key: Key) -> None:
        self._reserved.add(key)

    def observed(self, key: Key) -> None:
        """The Job of `key` is now visible in the index (or will never be)."""
        self._reserved.discard(key)

    def in_flight(self, running: Iterable[Key]) -> set[Key]:
        return set(running) | self._reserved

    def free_slots(self, running: Iterable[Key]) -> int:
        if self.unlimited:
            return 1 << 30
        return max(0, self.max_concurrent - len(self.in_flight(running)))

    def admit(
        self,
        cr: ObservedAnalysisJob,
        running: Iterable[Key],
        waiting: Iterable[ObservedAnalysisJob],
    ) -> bool:
        """May `cr` start now? Only if it is within the free slots at the head of the queue.

        Decided and reserved without an await in between, so two workers can
        never both take the last slot.
        """
        if self.unlimited:
            self.reserve(cr.key)
            return True
        running = set(running)
        free = self.free_slots(running)
        if free == 0:
            return False
        inflight = self.in_flight(running)
        head = sorted((w for w in waiting if w.key not in inflight), key=lambda w: w.queue_order)[
            :free
        ]
        if any(w.key == cr.key for w in head):
            self.reserve(cr.key)
            return True
        return False
