"""Compact snapshots of what the operator watches.

kopf's indices keep one snapshot per object in memory; keeping only the
fields the reconciler reads (no managedFields, no pod spec) is what keeps the
operator small with thousands of AnalysisJobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fondation_contracts import analysisjob as aj

Key = tuple[str, str]
"""(namespace, AnalysisJob name)."""


@dataclass(frozen=True)
class ObservedAnalysisJob:
    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    created: str
    spec: aj.AnalysisJobSpec
    status: aj.AnalysisJobStatus
    raw_status: dict[str, Any]
    awaiting_credentials: bool = False
    """The bridge is still writing its Git credentials Secret: start nothing yet."""

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def queue_order(self) -> tuple[str, int, str, str]:
        """FIFO by creation time, then by creation revision.

        creationTimestamp has one-second resolution; within a second the
        resourceVersion of a never-reconciled object (no status yet) is its
        creation revision, recorded as `queueRevision` when it is queued.
        """
        revision = self.status.queue_revision
        if not revision and not self.raw_status:
            try:
                revision = int(self.resource_version)
            except ValueError:
                revision = 0
        return (self.created, revision, self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Any) -> ObservedAnalysisJob:
        meta = body["metadata"]
        status = dict(body.get("status") or {})
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 1),
            resource_version=str(meta.get("resourceVersion", "")),
            created=str(meta.get("creationTimestamp", "")),
            spec=aj.parse_spec(dict(body.get("spec") or {})),
            status=aj.parse_status(status),
            raw_status=status,
            awaiting_credentials=aj.ANNOTATION_AWAITING_CREDENTIALS
            in (meta.get("annotations") or {}),
        )

    def newer_than(self, other: ObservedAnalysisJob) -> bool:
        """resourceVersion is etcd's revision: numerically ordered in practice."""
        try:
            return int(self.resource_version) > int(other.resource_version)
        except ValueError:
            return self.resource_version != other.resource_version


@dataclass(frozen=True, slots=True)
class ObservedJob:
    namespace: str
    name: str
    owner: str
    """Name of the owning AnalysisJob (from the controller ownerReference)."""
    attempt: int
    outcome: str
    """'' while unfinished, else 'Complete' or 'Failed'."""
    reason: str
    message: str
    active: int = 0

    @property
    def key(self) -> Key:
        return (self.namespace, self.owner)

    @property
    def finished(self) -> bool:
        return bool(self.outcome)

    @classmethod
    def from_body(cls, body: Any) -> ObservedJob | None:
        meta = body["metadata"]
        owner = next(
            (
                ref["name"]
                for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == aj.KIND and ref.get("controller")
            ),
            None,
        )
        if owner is None:
            return None
        outcome = reason = message = ""
        status = body.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                outcome = cond["type"]
                reason = cond.get("reason", "")
                message = cond.get("message", "")
        try:
            attempt = int((meta.get("labels") or {}).get(aj.LABEL_ATTEMPT, "0"))
        except ValueError:
            attempt = 0
        return cls(
            meta["namespace"],
            meta["name"],
            owner,
            attempt,
            outcome,
            reason,
            message,
            int(status.get("active") or 0),
        )


@dataclass(frozen=True)
class ObservedPod:
    namespace: str
    name: str
    job: str
    phase: str
    message: str

    @classmethod
    def from_body(cls, body: Any) -> ObservedPod:
        meta = body["metadata"]
        status = body.get("status") or {}
        message = status.get("message", "")
        for cs in status.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term and term.get("exitCode", 0) != 0:
                message = term.get("message") or f"exit code {term.get('exitCode')}" + (
                    f" ({term['reason']})" if term.get("reason") else ""
                )
        return cls(
            meta["namespace"],
            meta["name"],
            (meta.get("labels") or {}).get("batch.kubernetes.io/job-name", ""),
            status.get("phase", ""),
            message,
        )
