"""Reconciling one AnalysisJob: from what is observed to the next action.

Level-triggered and idempotent: `reconcile(key)` reads the current view and
does at most one step towards the desired state (start an attempt, record a
transition, retry, cancel). Every create uses a deterministic name, so a
crash between any two calls is repaired by the next reconcile, and a 409
AlreadyExists means the step was already done.

Before an attempt takes a slot, what the operator can judge alone is
judged (the runner's resources against the operator's maxima, the Secret
named as credentials); then the API server judges the runner pod (dry run)
and the Job, and a final refusal ends the AnalysisJob (`refusals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from fondation_contracts.analysisjob import TOTAL_STEPS, Phase
from fondation_contracts.course import Course
from fondation_contracts.ingest import ProgressEvent, StepState
from fondation_operator import course_store, credentials, jobbuilder, names, status, tokens
from fondation_operator.admission import Admission
from fondation_operator.cache import TIMEOUT_REASON, ClusterView, running_keys, waiting
from fondation_operator.events import Event, EventRecorder
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, Conflict, NotFound
from fondation_operator.kube.resources import JOBS, NETWORKPOLICIES, PODS, SECRETS
from fondation_operator.metrics import Metrics
from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob, ObservedPod
from fondation_operator.refusals import QUOTA_RETRY_SECONDS, Verdict, classify
from fondation_operator.settings import Settings

log = logging.getLogger(__name__)

_STEP_EVENTS: dict[StepState, tuple[str, Literal["Normal", "Warning"]]] = {
    StepState.CLONING: ("Cloning", "Normal"),
    StepState.STARTED: ("StepStarted", "Normal"),
    StepState.RETRYING: ("StepRetrying", "Warning"),
    StepState.FINISHED: ("StepFinished", "Normal"),
    StepState.FAILED: ("StepFailed", "Warning"),
}


@dataclass
class Reconciler:
    client: KubeClient
    settings: Settings
    view: ClusterView
    events: EventRecorder
    metrics: Metrics
    token_key: bytes
    admission: Admission = field(init=False)
    _recent: dict[Key, ObservedAnalysisJob] = field(default_factory=dict, init=False)
    _policies: set[str] = field(default_factory=set, init=False)
    """Namespaces where this process has applied the runner NetworkPolicy."""

    def __post_init__(self) -> None:
        self.admission = Admission(self.settings.max_concurrent_jobs)

    # ---- reading ---------------------------------------------------------

    def current(self, key: Key) -> ObservedAnalysisJob | None:
        """The index's copy, or our own last write if the watch has not caught up."""
        indexed = self.view.analysisjob(key)
        recent = self._recent.get(key)
        if recent is None:
            return indexed
        if indexed is None or indexed.uid != recent.uid or not recent.newer_than(indexed):
            self._recent.pop(key, None)
            return indexed
        return recent

    def _remember(self, body: dict[str, Any]) -> None:
        cr = ObservedAnalysisJob.from_body(body)
        self._recent[cr.key] = cr

    def forget(self, key: Key) -> None:
        self._recent.pop(key, None)
        self.admission.observed(key)

    def wake_queue(self) -> list[Key]:
        """Keys at the head of the queue that may start now that a slot is free."""
        if self.admission.unlimited:
            return []  # nothing ever waits
        running = running_keys(self.view)
        return [cr.key for cr in self.admission.next_up(running, waiting(self.view, running))]

    # ---- reconciling -----------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        """One step; returns seconds after which to look again, if any."""
        cr = self.current(key)
        if cr is None:
            self.forget(key)
            return None
        jobs = {job.attempt: job for job in self.view.jobs_of(key)}
        if jobs:
            self.admission.observed(key)
        phase = cr.status.phase

        if phase.terminal:
            if phase is Phase.CANCELLED:
                await self._delete_unfinished(jobs.values())
            return None
        if cr.spec.cancel:
            await self._cancel(cr, jobs)
            return None

        attempt = max([cr.status.attempt, *jobs])
        if attempt == 0 and cr.awaiting_credentials:
            return None  # the Convex bridge has not written its Git credentials yet
        if attempt == 0:
            return await self._admit_and_start(cr, 1, queued_reason="WaitingForSlot")
        job = jobs.get(attempt)
        if job is None:
            # Attempt recorded but its Job not observed: it was just created,
            # or the operator died before creating it. Creating is idempotent.
            self.admission.reserve(key)
            return await self._start(cr, attempt)
        if not job.finished:
            await self._observe_running(cr, job)
        elif job.outcome == "Complete":
            await self._succeed(cr, job)
        else:
            return await self._after_failure(cr, job)
        return None

    async def _admit_and_start(
        self, cr: ObservedAnalysisJob, attempt: int, *, queued_reason: str
    ) -> float | None:
        problem = await self._preflight(cr)
        if problem is not None:
            await self._fail(cr, *problem, attempt=attempt, job_name="")
            return None
        wait = status.seconds_until(cr.status.retry_at)
        if wait > 0:
            return wait
        running = running_keys(self.view)
        if self.admission.admit(cr, running, waiting(self.view, running)):
            return await self._start(cr, attempt)
        if cr.status.phase is not Phase.QUEUED or cr.status.retry_at:
            message = (
                f"{len(self.admission.in_flight(running))} analyses in flight, "
                f"cap {self.admission.max_concurrent}"
            )
            revision = cr.queue_order[1]
            await self._transition(
                cr,
                Phase.QUEUED,
                reason=queued_reason,
                message=message,
                queueRevision=revision,
                retryAt=None,
            )
            self._event(cr, "Normal", "Queued", message)
        return None

    async def _preflight(self, cr: ObservedAnalysisJob) -> tuple[str, str] | None:
        """What the operator refuses by itself, before the attempt takes a slot."""
        problem = jobbuilder.resources_over_maximum(cr, self.settings)
        if problem is not None:
            return "ResourcesOverMaximum", problem
        return await credentials.check(self.client, cr, self.settings)

    async def _start(self, cr: ObservedAnalysisJob, attempt: int) -> float | None:
        job_body = jobbuilder.build_job(cr, attempt, self.settings)
        secret_body = jobbuilder.build_token_secret(
            cr, attempt, tokens.for_attempt(self.token_key, cr.uid, attempt)
        )
        try:
            await self._ensure_network_policy(cr.namespace)
            await self.client.create(
                PODS, jobbuilder.dry_run_pod(job_body), cr.namespace, dry_run=True
            )
            await asyncio.gather(
                self._create_once(SECRETS, secret_body, cr.namespace),
                self._create_once(JOBS, job_body, cr.namespace),
            )
        except ApiError as exc:
            self.admission.observed(cr.key)
            return await self._refused(cr, attempt, exc)
        except BaseException:
            self.admission.observed(cr.key)
            raise
        job_name = job_body["metadata"]["name"]
        fields: dict[str, Any] = {"attempt": attempt, "jobName": job_name, "podName": ""}
        if not cr.status.started_at:
            fields["startedAt"] = status.now()
        if cr.status.retry_at:
            fields["retryAt"] = None
        if cr.status.phase is Phase.RUNNING and cr.status.attempt == attempt:
            return None
        await self._transition(
            cr,
            Phase.RUNNING,
            reason="JobCreated",
            message=f"attempt {attempt}: Job {job_name}",
            **fields,
        )
        self._event(cr, "Normal", "Started", f"attempt {attempt}: created Job {job_name}")
        return None

    async def _ensure_network_policy(self, namespace: str) -> None:
        """Apply the runner egress policy once per namespace and process, before any Job."""
        policy = jobbuilder.build_network_policy(namespace, self.settings)
        if policy is None or namespace in self._policies:
            return
        await self.client.apply(NETWORKPOLICIES, policy, field_manager=status.FIELD_MANAGER)
        self._policies.add(namespace)

    async def _refused(self, cr: ObservedAnalysisJob, attempt: int, exc: ApiError) -> float | None:
        """The API server refused the runner's pod or Job: fail, wait for quota, or retry."""
        refusal = classify(exc, f"the runner Job of attempt {attempt}")
        if refusal.verdict is Verdict.RETRY:
            raise exc
        if refusal.verdict is Verdict.REJECT:
            await self._fail(cr, refusal.reason, refusal.message, attempt=attempt, job_name="")
            return None
        await self._transition(
            cr,
            Phase.QUEUED,
            reason=refusal.reason,
            message=refusal.message,
            # Not `attempt`: a recorded attempt means its Job was created.
            retryAt=status.later(QUOTA_RETRY_SECONDS),
        )
        if not cr.status.retry_at:  # once, not on every retry
            self._event(cr, "Warning", refusal.reason, refusal.message)
        return QUOTA_RETRY_SECONDS

    async def _create_once(self, res: Any, body: dict[str, Any], namespace: str) -> None:
        try:
            await self.client.create(res, body, namespace)
        except Conflict as exc:
            if not exc.already_exists:
                raise

    async def _observe_running(self, cr: ObservedAnalysisJob, job: ObservedJob) -> None:
        st = cr.status
        pod_name = st.pod_name if st.job_name == job.name else ""
        if not pod_name and job.active:
            pod = await self._pod_of(job)
            pod_name = pod.name if pod else ""
        if st.phase is Phase.RUNNING and st.attempt == job.attempt and st.job_name == job.name:
            if pod_name != st.pod_name:
                await self._write(cr, {"podName": pod_name})
            return
        await self._transition(
            cr,
            Phase.RUNNING,
            reason="JobRunning",
            message=f"attempt {job.attempt}: Job {job.name}",
            attempt=job.attempt,
            jobName=job.name,
            podName=pod_name,
            retryAt=None,
        )

    async def _succeed(self, cr: ObservedAnalysisJob, job: ObservedJob) -> None:
        result = cr.status.result
        if result is None or not result.result_config_maps:
            await self._fail(
                cr,
                "NoCourse",
                f"attempt {job.attempt} exited without reporting a course",
                attempt=job.attempt,
                job_name=job.name,
            )
            return
        message = (
            f"attempt {job.attempt} completed: {result.documents} documents, "
            f"{result.chapters} chapters" + (" (partial)" if result.partial else "")
        )
        await self._transition(
            cr,
            Phase.SUCCEEDED,
            reason="Succeeded",
            message=message,
            attempt=job.attempt,
            jobName=job.name,
            failure=None,
        )
        self.metrics.finished(Phase.SUCCEEDED)
        self._event(cr, "Normal", "Succeeded", message)

    async def _after_failure(self, cr: ObservedAnalysisJob, job: ObservedJob) -> float | None:
        pod = await self._pod_of(job)
        detail = "; ".join(m for m in (job.message, pod.message if pod else "") if m)
        detail = detail or job.reason or "the runner pod failed"
        timed_out = job.reason == TIMEOUT_REASON
        if not timed_out and job.attempt <= cr.spec.retries:
            next_attempt = job.attempt + 1
            if cr.status.phase is not Phase.QUEUED:
                self._event(
                    cr,
                    "Warning",
                    "AttemptFailed",
                    f"attempt {job.attempt} failed: {detail}; retrying "
                    f"(attempt {next_attempt} of {cr.spec.retries + 1})",
                )
            return await self._admit_and_start(
                cr, next_attempt, queued_reason="RetryWaitingForSlot"
            )
        reason = "Timeout" if timed_out else "AttemptsExhausted"
        message = (
            f"timed out after {cr.spec.timeout_seconds}s: {detail}"
            if timed_out
            else f"attempt {job.attempt} of {cr.spec.retries + 1} failed: {detail}"
        )
        await self._fail(cr, reason, message, attempt=job.attempt, job_name=job.name)
        return None

    async def _fail(
        self, cr: ObservedAnalysisJob, reason: str, message: str, *, attempt: int, job_name: str
    ) -> None:
        """The one way an AnalysisJob ends Failed: status, metric and Event.

        A failure found before any Job exists (refused by the operator or the
        API server) has its reason as the Event's; others are `Failed`."""
        await self._transition(
            cr,
            Phase.FAILED,
            reason=reason,
            message=message,
            attempt=attempt,
            jobName=job_name,
            retryAt=None,
            failure={"reason": reason, "message": message[:1024]},
        )
        self.metrics.finished(Phase.FAILED)
        self._event(cr, "Warning", reason if not job_name else "Failed", message)

    async def _cancel(self, cr: ObservedAnalysisJob, jobs: dict[int, ObservedJob]) -> None:
        await self._delete_unfinished(jobs.values())
        self.admission.observed(cr.key)
        await self._transition(
            cr, Phase.CANCELLED, reason="Cancelled", message="cancelled by spec.cancel"
        )
        self.metrics.finished(Phase.CANCELLED)
        self._event(cr, "Normal", "Cancelled", "cancelled by spec.cancel; runner Job deleted")

    async def _delete_unfinished(self, jobs: Any) -> None:
        for job in jobs:
            if not job.finished:
                with contextlib.suppress(NotFound):
                    await self.client.delete(JOBS, job.name, job.namespace)

    async def _pod_of(self, job: ObservedJob) -> ObservedPod | None:
        """The attempt's pod, preferring a live one over a failed one left behind."""
        pods = [
            ObservedPod.from_body(body)
            for body in await self.client.list(
                PODS, job.namespace, label_selector=f"batch.kubernetes.io/job-name={job.name}"
            )
        ]
        return max(pods, key=lambda p: p.phase in ("Pending", "Running"), default=None)

    # ---- reports from the runner (through the ingest endpoint) ------------

    async def record_progress(self, cr: ObservedAnalysisJob, event: ProgressEvent) -> None:
        label = f"{event.step}/{TOTAL_STEPS} {event.step_name}"
        patch: dict[str, Any] = {
            "progress": {
                "step": event.step,
                "totalSteps": TOTAL_STEPS,
                "stepName": event.step_name,
                "label": label if event.step else event.step_name,
                "message": event.message[:1024] or event.state.value,
                "updatedAt": status.now(),
            }
        }
        if event.commit:
            patch["result"] = {"commit": event.commit}
        await self._write(cr, patch)
        reason, type_ = _STEP_EVENTS[event.state]
        detail = f": {event.message}" if event.message else ""
        self._event(cr, type_, reason, f"{label} {event.state.value}{detail}")

    async def record_course(self, cr: ObservedAnalysisJob, course: Course) -> None:
        """Store the course in ConfigMaps, then summarise it in status.result."""
        config_maps = await course_store.save(self.client, cr, course)
        chapters = len(course.chapters)
        await self._write(
            cr,
            {
                "result": {
                    "commit": course.commit,
                    "documents": len(course.documents),
                    "chapters": chapters,
                    "resultConfigMaps": config_maps,
                    "costUsd": round(course.usage.cost_usd, 6),
                    "inputTokens": course.usage.input_tokens,
                    "outputTokens": course.usage.output_tokens,
                    "partial": course.partial,
                }
            },
        )
        self._event(
            cr,
            "Normal",
            "CourseReceived",
            f"{len(course.documents)} documents in {len(config_maps)} ConfigMaps"
            + (f", {len(course.errors)} errors (partial)" if course.partial else ""),
        )

    # ---- writing ---------------------------------------------------------

    async def _transition(self, cr: ObservedAnalysisJob, phase: Phase, **kwargs: Any) -> None:
        try:
            body = await status.transition(self.client, cr, phase, **kwargs)
        except NotFound:
            self.forget(cr.key)
            return
        self._remember(body)

    async def _write(self, cr: ObservedAnalysisJob, patch: dict[str, Any]) -> None:
        try:
            body = await status.write(self.client, cr, patch)
        except NotFound:
            self.forget(cr.key)
            return
        self._remember(body)

    def _event(self, cr: ObservedAnalysisJob, type_: Any, reason: str, message: str) -> None:
        self.events.record(Event(cr.namespace, cr.name, cr.uid, type_, reason, message))


__all__ = ["Reconciler", "names"]
