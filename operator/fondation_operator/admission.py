"""The cluster-wide cap on concurrent runner Jobs, shared fairly by namespace.

Jobs in flight are the unfinished Jobs the operator has observed plus the
ones it has just decided to create and not yet seen come back through its
watch (reservations). Counting Jobs rather than running pods is deliberate:
a Pending pod waiting for a node is in flight too, which is what lets a
cluster autoscaler add nodes for exactly the admitted work.

**Who goes next** (`fair_order`): the namespace with the fewest Jobs in
flight; between namespaces with as many, the one whose oldest waiting
AnalysisJob is older; within a namespace, first in first out. Each slot
given counts for its namespace before the next is chosen, so free slots are
dealt round-robin over the namespaces that wait. One namespace with a
thousand queued AnalysisJobs therefore delays another namespace's first
one by at most one finishing Job, and with a single namespace this is plain
FIFO.

The order is a pure function of cluster state (the Jobs in flight and the
waiting AnalysisJobs' creation order, both rebuilt from a full listing
after a restart), so the cap and the order hold across crashes.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

from fondation_operator.observed import Key, ObservedAnalysisJob


def fair_order(
    waiting: Iterable[ObservedAnalysisJob], in_flight: Iterable[Key], limit: int
) -> list[ObservedAnalysisJob]:
    """The next `limit` AnalysisJobs to start, in order (see the module's rule)."""
    if limit <= 0:
        return []
    inflight = set(in_flight)
    per_namespace: dict[str, list[ObservedAnalysisJob]] = {}
    for cr in sorted((w for w in waiting if w.key not in inflight), key=lambda w: w.queue_order):
        per_namespace.setdefault(cr.namespace, []).append(cr)
    counts = Counter(namespace for namespace, _ in inflight)
    heap = [(counts[ns], crs[0].queue_order, ns) for ns, crs in per_namespace.items()]
    heapq.heapify(heap)
    position = dict.fromkeys(per_namespace, 0)
    out: list[ObservedAnalysisJob] = []
    while heap and len(out) < limit:
        count, _, ns = heapq.heappop(heap)
        crs = per_namespace[ns]
        out.append(crs[position[ns]])
        position[ns] += 1
        if position[ns] < len(crs):
            heapq.heappush(heap, (count + 1, crs[position[ns]].queue_order, ns))
    return out


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

    def next_up(
        self, running: Iterable[Key], waiting: Iterable[ObservedAnalysisJob]
    ) -> list[ObservedAnalysisJob]:
        """Those who would start now, one per free slot, in fair order."""
        running = set(running)
        return fair_order(waiting, self.in_flight(running), self.free_slots(running))

    def admit(
        self,
        cr: ObservedAnalysisJob,
        running: Iterable[Key],
        waiting: Iterable[ObservedAnalysisJob],
    ) -> bool:
        """May `cr` start now? Only if it is among `next_up`.

        Decided and reserved without an await in between, so two workers can
        never both take the last slot.
        """
        if self.unlimited:
            self.reserve(cr.key)
            return True
        if any(w.key == cr.key for w in self.next_up(running, waiting)):
            self.reserve(cr.key)
            return True
        return False
