"""What the reconciler reads: the operator's in-memory view of the cluster.

Only AnalysisJobs and their Jobs are watched. Pods are not: there is one per
Job, they change often and weigh the most, and the reconciler needs a pod
only twice in an attempt (its name once it exists, its message if it fails),
which two reads cover.

In the operator this view is kopf's indices (filled from a full listing
before any handler runs); in unit tests it is plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fondation_operator import status
from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob


class ClusterView(Protocol):
    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None: ...

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]: ...

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]: ...

    def jobs(self) -> Iterable[ObservedJob]: ...


def running_keys(view: ClusterView) -> set[Key]:
    """AnalysisJobs with an unfinished Job: the work in flight."""
    return {job.key for job in view.jobs() if not job.finished}


TIMEOUT_REASON = "DeadlineExceeded"


def needs_slot(view: ClusterView, cr: ObservedAnalysisJob) -> bool:
    """Would `cr` start a Job if a slot were free: never started, or its last
    attempt failed with retries left? A finished-but-not-yet-recorded success
    does not need one. Nor does one waiting for its namespace's quota until
    its `retryAt`: it gives its place to the others meanwhile."""
    if cr.status.phase.terminal or cr.spec.cancel:
        return False
    if status.seconds_until(cr.status.retry_at) > 0:
        return False
    jobs = list(view.jobs_of(cr.key))
    if not jobs:
        return True
    last = max(jobs, key=lambda j: j.attempt)
    return (
        last.outcome == "Failed"
        and last.reason != TIMEOUT_REASON
        and last.attempt <= cr.spec.retries
    )


def waiting(view: ClusterView, running: set[Key]) -> list[ObservedAnalysisJob]:
    """AnalysisJobs waiting for a slot, in queue (FIFO) order."""
    return sorted(
        (cr for cr in view.analysisjobs() if cr.key not in running and needs_slot(view, cr)),
        key=lambda cr: cr.queue_order,
    )
