"""The Convex bridge: Fondation's job queue in, AnalysisJobs out, status back.

A drop-in for Fondation's polling worker, inside the operator:

1. Claim: poll `jobs:claimOne` every `poll_interval_s`, one job at a time,
   only while the operator has a free slot (its concurrency cap, and the
   bridge's own `max_claims`). Each claim is recorded (claims.py) before its
   AnalysisJob is created, under a name derived from the Convex id and the
   attempt, so a crash anywhere repeats a step rather than duplicating it.
2. Follow: one task per claimed attempt keeps the lease (`jobs:heartbeat`)
   while the AnalysisJob lives and mirrors its progress with
   `jobs:updateStatus` when what the UI would show changes. It is woken by
   `notify()` on every watch event of its AnalysisJob, so mirroring is
   prompt, and it is level-triggered: it compares the AnalysisJob's current
   status with what it last sent. The status is the durable buffer: after a
   Convex outage or an operator restart, the next comparison sends whatever
   is missing, once.
3. Report: Succeeded -> the course from its ConfigMaps goes to `docs`
   (`putBatch`+`commitRun` where the deployment has them, else one
   `upsertFromJob`), then `jobs:complete`; Failed -> `jobs:retryOrFail` with
   the failure (Convex decides whether another attempt runs); a job the API
   server refuses (bad repository URL, missing field) -> failed at once with
   the API server's reason.

A refusal meaning the job is no longer ours (LEASE_LOST, STALE_ATTEMPT,
JOB_CANCELED, ...) cancels the AnalysisJob. Convex being unreachable never
fails a job: calls wait on one shared backoff (backoff.py) and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from fondation_contracts.analysisjob import Phase
from fondation_operator import course_store
from fondation_operator.cache import ClusterView, running_keys, waiting
from fondation_operator.convexbridge import analysisjobs, documents, progress
from fondation_operator.convexbridge.api import ConvexApi, JobRef, lost_lease
from fondation_operator.convexbridge.backoff import Backoff
from fondation_operator.convexbridge.claims import (
    ClaimRecord,
    ClaimStore,
    RecordInvalid,
    RecordRefused,
)
from fondation_operator.convexbridge.client import (
    ConvexClient,
    ConvexFunctionError,
    ConvexRequestRejected,
    ConvexUnavailable,
)
from fondation_operator.convexbridge.models import ClaimedJob, JobStatus
from fondation_operator.convexbridge.settings import ConvexSettings
from fondation_operator.convexbridge.settings import from_environment as settings_from_environment
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, Conflict, NotFound
from fondation_operator.kube.resources import ANALYSISJOBS
from fondation_operator.observed import Key, ObservedAnalysisJob
from fondation_operator.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_KUBE_TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)
_CONVEX_DOWN = (ConvexUnavailable, ConvexRequestRejected)
_MAX_TASK_DELAY_S = 30.0


class LeaseLost(Exception):
    """Convex says this attempt is no longer ours to run."""


@dataclass
class Tracked:
    """One claimed attempt, from its claim until Convex knows how it ended."""

    record: ClaimRecord
    recorded: bool = True
    """Is the record in the claims Secret? (Always before the AnalysisJob exists.)"""
    cr: ObservedAnalysisJob | None = None
    deleted: bool = False
    sent: progress.Progress | None = None
    beat_due: float = 0.0
    token_refused: bool = False
    batches_sent: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def ref(self) -> JobRef:
        return JobRef(self.record.job_id, self.record.attempt)

    @property
    def busy(self) -> bool:
        """Does it hold (or is about to hold) one of the operator's slots?"""
        return not self.deleted and (self.cr is None or not self.cr.status.phase.terminal)

    def observe(self, cr: ObservedAnalysisJob, *, deleted: bool = False) -> None:
        if deleted:
            self.deleted = True
        elif self.cr is None or cr.uid != self.cr.uid or cr.newer_than(self.cr):
            self.cr = cr
        self.wake.set()


class ConvexBridge:
    def __init__(
        self,
        settings: ConvexSettings,
        kube: KubeClient,
        *,
        max_concurrent_jobs: int = 0,
        view: Callable[[], ClusterView | None] = lambda: None,
        convex: ConvexClient | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.max_concurrent_jobs = max_concurrent_jobs
        self._view = view
        self.convex = convex or ConvexClient(
            settings.url, settings.deploy_key, timeout_s=settings.request_timeout_s
        )
        self.api = ConvexApi(
            self.convex,
            settings.functions,
            worker_id=settings.worker_id,
            lease_ms=settings.lease_ms,
            contract=None if settings.contract == "auto" else settings.contract,
        )
        self.claims = ClaimStore(kube, settings.claims_namespace, settings.claims_secret)
        self.backoff = Backoff(max_s=settings.backoff_max_s)
        self.tracked: dict[Key, Tracked] = {}
        self._refusals: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        """Set once claims are resumed and the deployment's contract is known."""
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        *,
        client: KubeClient,
        operator_settings: Settings,
        operator_namespace: str,
        view: Callable[[], ClusterView | None],
    ) -> ConvexBridge | None:
        """The bridge configured by `CONVEX_*`, or None when `CONVEX_URL` is unset.

        Raises ConvexConfigurationError, naming every bad variable."""
        settings = settings_from_environment(
            environ,
            operator_namespace=operator_namespace,
            watched_namespaces=operator_settings.namespaces,
        )
        if settings is None:
            return None
        return cls(
            settings,
            client,
            max_concurrent_jobs=operator_settings.max_concurrent_jobs,
            view=view,
        )

    # ---- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Start in the background: an unreachable Convex must not hold the operator."""
        self._main = asyncio.create_task(self._run(), name="convex-bridge")
        log.info(
            "Convex bridge on: %s as worker %r, AnalysisJobs in namespace %s, polling every %ss",
            self.settings.url,
            self.settings.worker_id,
            self.settings.namespace,
            self.settings.poll_interval_s,
        )

    async def stop(self) -> None:
        """Stop following jobs; their leases stay ours for the next start to resume."""
        self._stopping.set()
        tasks = [t for t in (self._main, *(x.task for x in self.tracked.values())) if t]
        tasks += self._refusals
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.claims.close()
        await self.convex.close()

    def notify(self, cr: ObservedAnalysisJob, *, deleted: bool = False) -> None:
        """Called on every AnalysisJob watch event: cheap, never blocks."""
        if deleted or cr.status.phase.terminal:
            self._slot_freed.set()
        tracked = self.tracked.get(cr.key)
        if tracked is not None and cr.spec.convex.job_id == tracked.record.job_id:
            tracked.observe(cr, deleted=deleted)

    async def _run(self) -> None:
        await self._resume()
        while not self.api.contract:
            await self._convex(self.api.detect)
        log.info("Convex deployment speaks the %s contract", self.api.contract)
        for tracked in self.tracked.values():
            self._follow(tracked)
        self.ready.set()
        await self._claim_loop()

    async def _resume(self) -> None:
        """Pick up the claims of a previous run, with their AnalysisJobs."""
        namespace = self.settings.namespace
        while True:
            try:
                records = await self.claims.load(namespace)
                bodies = await self.kube.list(ANALYSISJOBS, namespace) if records else []
                break
            except _KUBE_TRANSIENT as exc:
                log.warning("cannot read the Convex claims yet (%s); retrying", _api_text(exc))
                if not await self._pause(self.settings.poll_interval_s * 5):
                    return
        existing = {body["metadata"]["name"]: body for body in bodies}
        for record in records:
            tracked = Tracked(record)  # beat_due 0: renew the lease at once
            body = existing.get(record.name)
            if body is not None:
                tracked.observe(ObservedAnalysisJob.from_body(body))
            self.tracked[record.key] = tracked
        if records:
            log.info("resuming %d claimed Convex jobs", len(records))

    # ---- claiming -----------------------------------------------------------

    def busy_slots(self) -> int:
        """Unfinished AnalysisJobs holding or waiting for a slot, ours included."""
        keys = {key for key, tracked in self.tracked.items() if tracked.busy}
        view = self._view()
        if view is not None:
            running = running_keys(view)
            keys |= running | {cr.key for cr in waiting(view, running)}
        return len(keys)

    def has_capacity(self) -> bool:
        if len(self.tracked) >= self.settings.max_claims:
            return False
        cap = self.max_concurrent_jobs
        return cap <= 0 or self.busy_slots() < cap

    async def _claim_loop(self) -> None:
        interval = self.settings.poll_interval_s
        while not self._stopping.is_set():
            if not self.has_capacity():
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), interval)
                continue
            try:
                claim = await self._convex(self.api.claim_one)
            except _CONVEX_DOWN:
                continue
            except ConvexFunctionError as exc:
                log.error("%s refused to hand out a job: %s", exc.path, exc.message)
                await self._pause(interval)
                continue
            if claim is None:
                await self._pause(interval)
                continue
            self._accept(claim)

    def _accept(self, claim: ClaimedJob) -> None:
        """Follow a new claim. Its task records it before anything else (claims.py),
        while this loop goes on claiming: one claim at a time, without waiting
        for the Kubernetes API."""
        attempt = claim.current_attempt
        namespace = self.settings.namespace
        repository = claim.repository
        url = claim.repository_url or (repository.url if repository else None)
        if not url and repository and repository.full_name:
            url = self.settings.repository_url_template.format(fullName=repository.full_name)
        branch = claim.branch or (repository.default_branch if repository else None) or ""
        try:
            record = self._record(claim, attempt, namespace, url, branch)
        except RecordInvalid as exc:
            self._refuse_claim(JobRef(claim.id, attempt), str(exc))
            return
        if record.key in self.tracked:
            log.warning("Convex handed out job %s attempt %d twice", claim.id, attempt)
            return
        tracked = Tracked(
            record,
            recorded=False,
            beat_due=time.monotonic() + self.settings.heartbeat_interval_s,
        )
        self.tracked[record.key] = tracked
        log.info(
            "claimed Convex job %s (attempt %d) as AnalysisJob %s/%s",
            claim.id,
            attempt,
            namespace,
            record.name,
        )
        self._follow(tracked)

    def _record(
        self, claim: ClaimedJob, attempt: int, namespace: str, url: str | None, branch: str
    ) -> ClaimRecord:
        return ClaimRecord.bounded(
            namespace=namespace,
            name=analysisjobs.name_for(claim.id, attempt),
            job_id=claim.id,
            attempt=attempt,
            repository_id=claim.repository_id,
            repository_url=url,
            branch=branch,
            language=progress.normalise_language(claim.language, self.settings.default_language),
            callback_token=claim.callback_token,
        )

    def _refuse_claim(self, ref: JobRef, reason: str) -> None:
        """A claim that cannot even be recorded: failed in Convex, nothing created."""
        log.error("Convex job %.128s: %s", ref.job_id, reason)

        async def report() -> None:
            with contextlib.suppress(*_CONVEX_DOWN, ConvexFunctionError):
                await self._convex(lambda: self.api.retry_or_fail(ref, reason))

        task = asyncio.create_task(report(), name="convex-refuse-claim")
        self._refusals.add(task)
        task.add_done_callback(self._refusals.discard)

    # ---- following one attempt ------------------------------------------------

    def _follow(self, tracked: Tracked) -> None:
        name = f"convex-{tracked.record.name}"
        tracked.task = asyncio.create_task(self._follow_until_reported(tracked), name=name)

    async def _follow_until_reported(self, tracked: Tracked) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            tracked.wake.clear()
            try:
                if await self._advance(tracked):
                    return
                delay = 0.5
            except LeaseLost as lost:
                await self._abandon(tracked, str(lost))
                return
            except _CONVEX_DOWN:
                continue  # the shared backoff paces the retry
            except _KUBE_TRANSIENT as exc:
                log.warning(
                    "AnalysisJob %s/%s: Kubernetes API error (%s); retrying in %.1fs",
                    tracked.record.namespace,
                    tracked.record.name,
                    _api_text(exc),
                    delay,
                )
                await self._pause(delay)
                delay = min(delay * 2, _MAX_TASK_DELAY_S)
                continue
            except Exception:
                log.exception("following Convex job %s failed; retrying", tracked.record.job_id)
                await self._pause(delay)
                delay = min(delay * 2, _MAX_TASK_DELAY_S)
                continue
            timeout = max(0.0, tracked.beat_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracked.wake.wait(), timeout)

    async def _advance(self, tracked: Tracked) -> bool:
        """One level-triggered step; True once Convex knows how the attempt ended."""
        if not tracked.recorded:
            try:
                await self.claims.put(tracked.record)
            except RecordRefused as exc:
                await self._report_failure(tracked, str(exc))
                return True
            tracked.recorded = True
        if tracked.cr is None and not tracked.deleted:
            # A claim resumed after a restart is due a heartbeat at once: it
            # confirms the job is still ours before an analysis starts for it.
            await self._heartbeat_if_due(tracked)
            refusal = await self._create_analysisjob(tracked)
            if refusal is not None:
                await self._reject(tracked, refusal)
                return True
        cr = tracked.cr
        if tracked.deleted or cr is None:
            await self._report_failure(tracked, "the AnalysisJob was deleted before it finished")
            return True
        phase = cr.status.phase
        if phase is Phase.SUCCEEDED:
            await self._deliver(tracked, cr)
            return True
        if phase is Phase.FAILED:
            failure = cr.status.failure
            reason = f"{failure.reason}: {failure.message}" if failure else "the analysis failed"
            await self._report_failure(tracked, reason)
            return True
        if phase is Phase.CANCELLED:
            await self._report_cancelled(tracked)
            return True
        await self._heartbeat_if_due(tracked)
        wanted = progress.of(cr, tracked.record.language)
        if wanted is not None and wanted != tracked.sent:
            await self._mirror(tracked, wanted)
        return False

    async def _create_analysisjob(self, tracked: Tracked) -> str | None:
        """Create (idempotently) the attempt's AnalysisJob; the refusal, if any."""
        record = tracked.record
        url = record.repository_url or await self._repository_url(record)
        if not url:
            return (
                "the job has no repository URL (no repositoryUrl, "
                "and no repository record with one)"
            )
        body = analysisjobs.build(record, url, self.settings)
        try:
            created = await self.kube.create(ANALYSISJOBS, body, record.namespace, strict=True)
        except Conflict as exc:
            if not exc.already_exists:
                raise
            created = await self.kube.get(ANALYSISJOBS, record.name, record.namespace)
            existing = ObservedAnalysisJob.from_body(created)
            if existing.spec.convex.job_id != record.job_id:
                return f"AnalysisJob {record.name} already exists for another job"
        except ApiError as exc:
            if exc.status in (400, 422):
                return f"the cluster refused the job: {exc.message}"
            raise
        tracked.observe(ObservedAnalysisJob.from_body(created))
        return None

    async def _repository_url(self, record: ClaimRecord) -> str | None:
        """Fondation's original claim carries only a repositoryId: look it up."""
        if not record.repository_id:
            return None
        try:
            repository = await self._convex(lambda: self.api.repository(record.repository_id or ""))
        except ConvexFunctionError as exc:
            log.warning("no repository record for Convex job %s: %s", record.job_id, exc.message)
            return None
        if repository is None:
            return None
        if repository.url:
            return repository.url
        if repository.full_name:
            return self.settings.repository_url_template.format(fullName=repository.full_name)
        return None

    async def _heartbeat_if_due(self, tracked: Tracked) -> None:
        if time.monotonic() < tracked.beat_due:
            return
        try:
            await self._convex(lambda: self.api.heartbeat(tracked.ref))
        except ConvexFunctionError as exc:
            self._raise_if_lost(exc)
            log.warning("heartbeat of Convex job %s refused: %s", tracked.ref.job_id, exc.message)
        tracked.beat_due = time.monotonic() + self.settings.heartbeat_interval_s

    async def _mirror(self, tracked: Tracked, wanted: progress.Progress) -> None:
        token = tracked.record.callback_token
        if token is None or tracked.token_refused:
            return
        try:
            await self._convex(
                lambda: self.api.update_status(
                    tracked.ref,
                    token,
                    wanted.status,
                    progress=wanted.progress,
                    current_step=wanted.current_step,
                    total_steps=wanted.total_steps,
                )
            )
        except ConvexFunctionError as exc:
            self._raise_if_lost(exc)
            if exc.code == "INVALID_TOKEN":
                tracked.token_refused = True
            log.warning(
                "status of Convex job %s not updated (%s): %s",
                tracked.ref.job_id,
                wanted.status,
                exc.message,
            )
        tracked.sent = wanted

    async def _deliver(self, tracked: Tracked, cr: ObservedAnalysisJob) -> None:
        """Succeeded: documents first, then `complete` (the UI shows docs of completed jobs)."""
        record = tracked.record
        saving = progress.saving(record.language)
        if tracked.sent != saving:
            await self._mirror(tracked, saving)
        try:
            course = await course_store.load(self.kube, record.namespace, record.name)
        except (NotFound, course_store.CourseUnavailable, KeyError, ValueError) as exc:
            await self._report_failure(tracked, f"the course could not be read back: {exc}")
            return
        files = documents.files_of(course, extended=self.api.extended)
        generated = documents.epoch_ms(cr.status.completed_at) or int(time.time() * 1000)
        summary = documents.summary_of(course, generated)
        run_id = f"operator-{record.name}"
        ref = tracked.ref
        try:
            if self.api.extended:
                for index, batch in enumerate(documents.batches(files)):
                    if index < tracked.batches_sent:
                        continue
                    await self._convex(functools.partial(self.api.put_batch, ref, run_id, batch))
                    tracked.batches_sent = index + 1
                await self._convex(lambda: self.api.commit_run(ref, run_id, summary, len(files)))
            elif record.repository_id:
                await self._convex(
                    lambda: self.api.upsert_documents(
                        ref, record.repository_id or "", run_id, files, summary
                    )
                )
            else:
                await self._report_failure(tracked, "the job has no repositoryId for its documents")
                return
            await self._convex(
                lambda: self.api.complete(ref, documents.result_of(course), len(files))
            )
        except ConvexFunctionError as exc:
            self._raise_if_lost(exc)
            await self._report_failure(
                tracked, f"the course could not be stored in Convex: {exc.message}"
            )
            return
        log.info(
            "Convex job %s completed: %d documents from AnalysisJob %s/%s",
            record.job_id,
            len(files),
            record.namespace,
            record.name,
        )
        await self._finish(tracked)

    async def _report_failure(self, tracked: Tracked, reason: str) -> None:
        """`retryOrFail`: Convex retries the job (a new attempt) or marks it dead."""
        try:
            answer = await self._convex(lambda: self.api.retry_or_fail(tracked.ref, reason))
        except ConvexFunctionError as exc:
            self._raise_if_lost(exc)
            log.error(
                "Convex refused the failure of job %s (%s): %s",
                tracked.ref.job_id,
                reason,
                exc.message,
            )
        else:
            log.info(
                "Convex job %s attempt %d failed (%s): now %s",
                tracked.ref.job_id,
                tracked.ref.attempt,
                reason,
                answer.status or "reported",
            )
        await self._finish(tracked)

    async def _reject(self, tracked: Tracked, reason: str) -> None:
        """A job that cannot run at all: failed for good, not retried."""
        log.warning("Convex job %s cannot run: %s", tracked.ref.job_id, reason)
        await self._end_with_status(tracked, "failed", reason)

    async def _report_cancelled(self, tracked: Tracked) -> None:
        """Cancelled in the cluster (spec.cancel by a person): cancelled in Convex too."""
        reason = "cancelled in the cluster (spec.cancel of its AnalysisJob)"
        await self._end_with_status(tracked, "canceled", reason)

    async def _end_with_status(self, tracked: Tracked, status: JobStatus, reason: str) -> None:
        """End the job with a final status (which needs the claim's callback
        token); without the token, or if Convex refuses, report a failure."""
        token = tracked.record.callback_token
        if token is not None:
            try:
                await self._convex(
                    lambda: self.api.update_status(tracked.ref, token, status, error=reason)
                )
            except ConvexFunctionError as exc:
                self._raise_if_lost(exc)
            else:
                await self._finish(tracked)
                return
        await self._report_failure(tracked, reason)

    async def _abandon(self, tracked: Tracked, why: str) -> None:
        """The job is not ours any more: stop its analysis and forget it."""
        record, cr = tracked.record, tracked.cr
        running = cr is not None and not cr.status.phase.terminal and not cr.spec.cancel
        log.warning(
            "Convex job %s attempt %d is no longer ours (%s)%s",
            record.job_id,
            record.attempt,
            why,
            f": cancelling AnalysisJob {record.namespace}/{record.name}" if running else "",
        )
        if running:
            delay = 0.5
            while not self._stopping.is_set():
                try:
                    await self.kube.patch(
                        ANALYSISJOBS, record.name, {"spec": {"cancel": True}}, record.namespace
                    )
                    break
                except NotFound:
                    break
                except _KUBE_TRANSIENT as exc:
                    log.warning("cannot cancel %s yet: %s", record.name, _api_text(exc))
                    await self._pause(delay)
                    delay = min(delay * 2, _MAX_TASK_DELAY_S)
        await self._finish(tracked)

    async def _finish(self, tracked: Tracked) -> None:
        """Convex knows the outcome: drop the record (and the token with it)."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self.claims.remove(tracked.record.key)
                break
            except _KUBE_TRANSIENT as exc:
                log.warning(
                    "cannot drop the claim record of %s yet: %s",
                    tracked.record.name,
                    _api_text(exc),
                )
                await self._pause(delay)
                delay = min(delay * 2, _MAX_TASK_DELAY_S)
        else:
            return  # stopping: the record stays, the next start finishes the job
        self.tracked.pop(tracked.record.key, None)
        self._slot_freed.set()

    # ---- calling Convex -----------------------------------------------------------

    async def _convex(self, call: Callable[[], Awaitable[T]]) -> T:
        """Every Convex call: paced by the shared backoff, outages logged once per probe."""
        try:
            result = await self.backoff.attempt(call)
        except _CONVEX_DOWN as exc:
            delay = self.backoff.failed()
            if delay is not None:
                if isinstance(exc, ConvexRequestRejected):
                    log.error(
                        "Convex refused the request (check CONVEX_URL and the deploy key): "
                        "%s; retrying in %.1fs",
                        exc,
                        delay,
                    )
                else:
                    log.warning("Convex unreachable (%s); retrying in %.1fs", exc, delay)
            raise
        except ConvexFunctionError:
            self._reachable()
            raise
        self._reachable()
        return result

    def _reachable(self) -> None:
        failures = self.backoff.succeeded()
        if failures:
            log.info("Convex reachable again after %d failed calls", failures)

    @staticmethod
    def _raise_if_lost(exc: ConvexFunctionError) -> None:
        if lost_lease(exc):
            raise LeaseLost(exc.code or exc.message) from None

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopping; False when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


def _api_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
