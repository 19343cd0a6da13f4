"""What the reconciler reads: the operator's in-memory view of the cluster.

In the operator this view is kopf's indices (filled from a full listing
before any handler runs); in unit tests it is plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob, ObservedPod


class ClusterView(Protocol):
    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None: ...

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]: ...

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]: ...

    def jobs(self) -> Iterable[ObservedJob]: ...

    def pod_of(self, namespace: str, job_name: str) -> ObservedPod | None: ...


def running_keys(view: ClusterView) -> set[Key]:
    """AnalysisJobs with an unfinished Job: the work in flight."""
    return {job.key for job in view.jobs() if not job.finished}


def waiting(view: ClusterView, running: set[Key]) -> list[ObservedAnalysisJob]:
    """Live AnalysisJobs without an unfinished Job, in queue (FIFO) order."""
    return sorted(
        (
            cr
            for cr in view.analysisjobs()
            if not cr.status.phase.terminal and not cr.spec.cancel and cr.key not in running
        ),
        key=lambda cr: cr.queue_order,
    )
