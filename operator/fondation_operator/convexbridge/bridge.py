"""The Convex bridge: Fondation's job queue in, AnalysisJobs out, status back.

A drop-in for Fondation's polling worker, inside the operator, speaking
Fondation's own functions (DESIGN section 6; api.py):

1. Claim: poll `queue:claimOne` every `poll_interval_s`, one job at a time,
   only while the operator has a free slot (its concurrency cap, and the
   bridge's own `max_claims`). Each claim is recorded (claims.py) before its
   AnalysisJob is created, under a name derived from the Convex id and the
   attempt, so a crash anywhere repeats a step rather than duplicating it.
   The repository row gives the clone URL and the default branch; a job of
   a user (`userId`) is cloned with that user's GitHub token, decrypted
   here (github_tokens.py) and handed to the runner in a Secret owned by
   the AnalysisJob (analysisjobs.py).
2. Follow: one task per claimed attempt keeps the lease and reports status
   and progress in Fondation's words through `queue:heartbeat`, as
   Fondation's worker does, when what the UI would show changes, and
   appends the same lines to the job page's log (`jobs:appendLog`,
   bounded). It is woken by `notify()` on every watch event of its
   AnalysisJob, so mirroring is prompt, and it is level-triggered: it
   compares the AnalysisJob's current status with what it last sent. The
   status is the durable buffer: after a Convex outage or an operator
   restart, the next comparison sends whatever is missing, once.
3. Honour the UI: every few seconds, and before every write, the job's row
   is read (`jobs:getJob`). Cancelled, failed, dead, completed or
   `cancelRequested` (the UI cancels without clearing the lease, so
   heartbeats alone would not notice) means the job is not ours any more:
   its AnalysisJob is cancelled and nothing is written over the row. A job
   superseded by a newer one of the same repository (`jobs:regenerate`) is
   stopped the same way and never uploads documents, which would replace
   the newer course.
4. Report: Succeeded -> the course from its ConfigMaps goes to `docs`
   (the batched upload where the deployment has it, else one
   `docs:upsertFromJob`), then `queue:complete` with `docsCount`; Failed ->
   `queue:retryOrFail` with the failure (Convex decides whether another
   attempt runs); a job that cannot run (no user, no token, a URL the API
   server refuses) -> failed at once with the reason, in the UI's words.

Convex being unreachable never fails a job: calls wait on one shared
backoff (backoff.py) and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic import SecretStr

from fondation_contracts import fondation
from fondation_contracts.analysisjob import ANNOTATION_AWAITING_CREDENTIALS, Phase
from fondation_operator import course_store
from fondation_operator.cache import ClusterView, running_keys, waiting
from fondation_operator.convexbridge import analysisjobs, documents, github_tokens, progress
from fondation_operator.convexbridge.api import (
    SUPERSEDED_CODE,
    CannotRun,
    ConvexApi,
    JobRef,
    lost_lease,
)
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
from fondation_operator.convexbridge.models import ClaimedJob, RepositoryRecord
from fondation_operator.convexbridge.settings import ConvexSettings
from fondation_operator.convexbridge.settings import from_environment as settings_from_environment
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, Conflict, NotFound
from fondation_operator.kube.resources import ANALYSISJOBS, SECRETS
from fondation_operator.observed import Key, ObservedAnalysisJob
from fondation_operator.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_KUBE_TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)
_CONVEX_DOWN = (ConvexUnavailable, ConvexRequestRejected)
_MAX_TASK_DELAY_S = 30.0
_MAX_LOG_CHARS = 500
_ROW_CHECKS_PER_S = 20.0
"""Bound on `jobs:getJob` calls per second, all jobs together."""


class LeaseLost(Exception):
    """Convex says this attempt is no longer ours to run."""


class Superseded(Exception):
    """A newer job of the same repository exists (`jobs:regenerate`)."""


class _Missing:
    """A function the deployment does not have."""


_MISSING = _Missing()


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
    row_due: float = 0.0
    token_refused: bool = False
    batches_sent: int = 0
    logged: int = 0
    """Lines appended to the job's log."""
    git_token: SecretStr | None = None
    """The user's GitHub token, held only until its Secret is written."""
    superseded: bool = False
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
        self._missing_functions: set[str] = set()
        self._regenerate_unknown = False
        """No query for a repository's newest job: superseding checked before uploads only."""
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

    def health(self) -> dict[str, Any]:
        """The bridge's part of `GET /health`, in the fields Fondation's worker uses."""
        return {
            "workerId": self.settings.worker_id,
            "activeJobs": sum(1 for tracked in self.tracked.values() if tracked.busy),
            "maxConcurrentJobs": self.max_concurrent_jobs,
            "convex": {"url": self.settings.url, "reachable": not self.backoff.down},
        }

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
        # A job of Fondation's UI has a user and a prompt; Fondation's worker
        # refuses one without its prompt, and so does the bridge.
        refusal = fondation.MISSING_PROMPT if claim.user_id and not claim.prompt else None
        try:
            record = self._record(claim, attempt, namespace, url, branch, refusal=refusal)
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
        self,
        claim: ClaimedJob,
        attempt: int,
        namespace: str,
        url: str | None,
        branch: str,
        *,
        refusal: str | None,
    ) -> ClaimRecord:
        return ClaimRecord.bounded(
            namespace=namespace,
            name=analysisjobs.name_for(claim.id, attempt),
            job_id=claim.id,
            attempt=attempt,
            repository_id=claim.repository_id,
            user_id=claim.user_id,
            repository_url=url,
            branch=branch,
            language=progress.normalise_language(claim.language, self.settings.default_language),
            callback_token=claim.callback_token,
            refusal=refusal,
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
            except Superseded:
                tracked.superseded = True
                continue
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
            due = min(tracked.beat_due, tracked.row_due)
            timeout = max(0.0, due - time.monotonic())
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
        if tracked.superseded:
            await self._supersede(tracked)
            return True
        if tracked.cr is None and not tracked.deleted:
            # A claim resumed after a restart is checked at once: the job may
            # have been cancelled, or handed to another worker, meanwhile.
            await self._check_row(tracked)
            await self._heartbeat_if_due(tracked)
            refusal = tracked.record.refusal or await self._create_analysisjob(tracked)
            if refusal is not None:
                await self._reject(tracked, refusal)
                return True
        cr = tracked.cr
        if cr is not None and cr.awaiting_credentials and not tracked.deleted:
            refusal = await self._provide_credentials(tracked, cr)
            if refusal is not None:
                await self._reject(tracked, refusal)
                return True
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
        if time.monotonic() >= tracked.row_due:
            await self._check_row(tracked)
        wanted = progress.of(cr)
        if wanted is not None and wanted != tracked.sent:
            await self._beat(tracked, wanted)
        else:
            await self._heartbeat_if_due(tracked)
        return False

    # ---- the job's row: cancelled, superseded? ---------------------------------

    async def _check_row(
        self, tracked: Tracked, *, before_upload: bool = False, newer: bool = True
    ) -> None:
        """Raise LeaseLost if the UI stopped the job, Superseded (with `newer`)
        if a newer job of its repository exists; schedule the next check."""
        record = tracked.record
        row = await self._optional(lambda: self.api.job_row(record.job_id))
        if row is None:
            raise LeaseLost("the job no longer exists")
        if not isinstance(row, _Missing) and row.stopped:
            why = "cancel requested" if row.cancel_requested else row.status
            raise LeaseLost(f"the job is {why} in Convex")
        if newer and not isinstance(row, _Missing) and row.superseded_by:
            raise Superseded(row.superseded_by)
        # Fondation's regenerate leaves no mark on the old job: a newer job of the
        # repository is the sign, checked on the periodic round and always before
        # the upload. (The project's convex/ marks it, and jobs of one repository
        # may run side by side there, e.g. on two branches.)
        if (
            newer
            and not self.api.extended
            and record.repository_id
            and (before_upload or not self._regenerate_unknown)
        ):
            repository_id = record.repository_id
            latest = await self._optional(lambda: self.api.latest_job(repository_id))
            if isinstance(latest, _Missing):
                self._regenerate_unknown = True
            elif latest is not None and latest.id and latest.id != record.job_id:
                raise Superseded(latest.id)
        interval = max(self.settings.cancel_check_interval_s, len(self.tracked) / _ROW_CHECKS_PER_S)
        tracked.row_due = time.monotonic() + interval

    async def _optional(self, call: Callable[[], Awaitable[T]]) -> T | _Missing:
        """A query the deployment may not have: _MISSING (remembered) when it has not."""
        try:
            return await self._convex(call)
        except ConvexFunctionError as exc:
            if exc.missing_function:
                if exc.path not in self._missing_functions:
                    self._missing_functions.add(exc.path)
                    log.warning("Convex deployment has no %s: doing without it", exc.path)
                return _MISSING
            raise

    async def _supersede(self, tracked: Tracked) -> None:
        """A newer job of the repository exists: stop, upload nothing, say why."""
        await self._cancel_analysisjob(tracked, fondation.SUPERSEDED)
        await self._end_with_status(tracked, "canceled", fondation.SUPERSEDED)

    # ---- creating the AnalysisJob ----------------------------------------------

    async def _create_analysisjob(self, tracked: Tracked) -> str | None:
        """Create (idempotently) the attempt's AnalysisJob; the refusal, if any."""
        record = tracked.record
        url, branch = record.repository_url, record.branch
        if (not url or not branch) and record.repository_id:
            repository = await self._repository(record)
            if repository is not None:
                url = url or self._clone_url(repository)
                branch = branch or repository.default_branch or ""
        if not url:
            return (
                "the job has no repository URL (no repositoryUrl, "
                "and no repository record with one)"
            )
        private = bool(record.user_id)
        if private and tracked.git_token is None:
            refusal = await self._fetch_token(tracked)
            if refusal is not None:
                return refusal
        body = analysisjobs.build(record, url, self.settings, branch=branch, private=private)
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

    async def _repository(self, record: ClaimRecord) -> RepositoryRecord | None:
        """Fondation's claim carries only a repositoryId: look its row up."""
        try:
            return await self._convex(lambda: self.api.repository(record.repository_id or ""))
        except ConvexFunctionError as exc:
            log.warning("no repository record for Convex job %s: %s", record.job_id, exc.message)
            return None

    def _clone_url(self, repository: RepositoryRecord) -> str | None:
        if repository.url:
            return repository.url
        if repository.full_name:
            return self.settings.repository_url_template.format(fullName=repository.full_name)
        return None

    async def _fetch_token(self, tracked: Tracked) -> str | None:
        """The user's GitHub token into `tracked.git_token`; the refusal, if any."""
        user_id = tracked.record.user_id or ""
        try:
            stored = await self._convex(lambda: self.api.github_token(user_id))
        except CannotRun as exc:
            return str(exc)
        except ConvexFunctionError as exc:
            return f"{fondation.MISSING_GITHUB_TOKEN}: {exc.message}"
        try:
            tracked.git_token = github_tokens.decode(stored, self.settings.encryption_key)
        except github_tokens.TokenError as exc:
            return f"{fondation.MISSING_GITHUB_TOKEN}: {exc}"
        return None

    async def _provide_credentials(self, tracked: Tracked, cr: ObservedAnalysisJob) -> str | None:
        """Write the AnalysisJob's Git token Secret, then let its Job start."""
        if tracked.git_token is None:
            refusal = await self._fetch_token(tracked)
            if refusal is not None:
                return refusal
        assert tracked.git_token is not None
        with contextlib.suppress(Conflict):  # written before a crash: done
            await self.kube.create(
                SECRETS, analysisjobs.git_secret(cr, tracked.git_token), cr.namespace
            )
        tracked.git_token = None
        updated = await self.kube.patch(
            ANALYSISJOBS,
            cr.name,
            {"metadata": {"annotations": {ANNOTATION_AWAITING_CREDENTIALS: None}}},
            cr.namespace,
        )
        tracked.observe(ObservedAnalysisJob.from_body(updated))
        return None

    # ---- status, progress and log ---------------------------------------------------

    async def _heartbeat_if_due(self, tracked: Tracked) -> None:
        if time.monotonic() >= tracked.beat_due:
            await self._beat(tracked, None)

    async def _beat(self, tracked: Tracked, wanted: progress.Progress | None) -> None:
        """`queue:heartbeat`: the lease, and with `wanted` the UI's status and words."""
        fields: dict[str, Any] = {}
        if wanted is not None:
            fields = {
                "status": wanted.status,
                "progress": wanted.progress,
                "current_step": wanted.current_step,
                "total_steps": wanted.total_steps,
            }
        try:
            await self._convex(lambda: self.api.heartbeat(tracked.ref, **fields))
        except ConvexFunctionError as exc:
            self._raise_if_lost(exc)
            log.warning("heartbeat of Convex job %s refused: %s", tracked.ref.job_id, exc.message)
        tracked.beat_due = time.monotonic() + self.settings.heartbeat_interval_s
        if wanted is not None:
            tracked.sent = wanted
            await self._log(tracked, "info", wanted.progress)

    async def _log(self, tracked: Tracked, level: fondation.LogLevel, line: str) -> None:
        """One line in the job page's log; best effort and bounded, never a reason
        to hold the job (an outage drops the line)."""
        if tracked.logged >= self.settings.max_log_lines:
            return
        if self.settings.functions.append_log in self._missing_functions:
            return
        tracked.logged += 1
        text = line if len(line) <= _MAX_LOG_CHARS else line[: _MAX_LOG_CHARS - 1] + "…"
        with contextlib.suppress(*_CONVEX_DOWN):
            await self._optional(lambda: self.api.append_log(tracked.ref, level, text))

    # ---- reporting the outcome -------------------------------------------------------

    async def _deliver(self, tracked: Tracked, cr: ObservedAnalysisJob) -> None:
        """Succeeded: documents first, then `complete` (the UI shows docs of completed jobs)."""
        record = tracked.record
        await self._check_row(tracked, before_upload=True)
        if tracked.sent != progress.SAVING:
            await self._beat(tracked, progress.SAVING)
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
        await self._log(tracked, "info", f"Cours sauvegardé: {len(files)} documents")
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
        await self._check_row(tracked, newer=False)
        await self._log(tracked, "error", reason)
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

    async def _end_with_status(
        self, tracked: Tracked, status: fondation.FinalStatus, reason: str
    ) -> None:
        """End the job with a final status through `jobs:updateStatus` (which
        needs the claim's callback token). Without the token or the function
        (Fondation's worker has only `queue:*` to fail a job with), or if
        Convex refuses, it is a failure for `queue:retryOrFail`."""
        await self._check_row(tracked, newer=False)
        token = tracked.record.callback_token
        if token is not None and self.settings.functions.update_status not in (
            self._missing_functions
        ):
            try:
                answer = await self._optional(
                    lambda: self.api.update_status(tracked.ref, token, status, error=reason)
                )
            except ConvexFunctionError as exc:
                self._raise_if_lost(exc)
            else:
                if not isinstance(answer, _Missing):
                    await self._log(tracked, "error" if status == "failed" else "info", reason)
                    await self._finish(tracked)
                    return
        await self._report_failure(tracked, reason)

    async def _abandon(self, tracked: Tracked, why: str) -> None:
        """The job is not ours any more: stop its analysis and forget it."""
        await self._cancel_analysisjob(tracked, why)
        await self._finish(tracked)

    async def _cancel_analysisjob(self, tracked: Tracked, why: str) -> None:
        record, cr = tracked.record, tracked.cr
        running = cr is not None and not cr.status.phase.terminal and not cr.spec.cancel
        log.warning(
            "Convex job %s attempt %d is no longer ours (%s)%s",
            record.job_id,
            record.attempt,
            why,
            f": cancelling AnalysisJob {record.namespace}/{record.name}" if running else "",
        )
        if not running:
            return
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await self.kube.patch(
                    ANALYSISJOBS, record.name, {"spec": {"cancel": True}}, record.namespace
                )
                return
            except NotFound:
                return
            except _KUBE_TRANSIENT as exc:
                log.warning("cannot cancel %s yet: %s", record.name, _api_text(exc))
                await self._pause(delay)
                delay = min(delay * 2, _MAX_TASK_DELAY_S)

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
        if exc.code == SUPERSEDED_CODE:
            raise Superseded(exc.message) from None
        if lost_lease(exc):
            raise LeaseLost(exc.code or exc.message) from None

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopping; False when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()


def _api_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
