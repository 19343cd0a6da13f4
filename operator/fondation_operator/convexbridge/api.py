"""The job-queue functions of a Fondation Convex deployment, typed.

The calls are those of Fondation's own worker (DESIGN section 6):
`queue:claimOne`, `queue:heartbeat` (the lease, and the status and
progress the UI shows), `queue:complete`, `queue:retryOrFail`,
`docs:upsertFromJob`, `repositories:getByRepositoryId`, `users:*` for
private repositories, `jobs:getJob` to know whether the job was cancelled
and `jobs:appendLog` for the job page's log. Two flavours are spoken:

- `original`: Fondation's own functions. They take exactly the arguments of
  the old worker and refuse any other (Convex validators reject unknown
  fields), and signal a lost lease with a plain error ("Job not found or not
  owned by worker").
- `extended`: the project's convex/, a superset of Fondation's. The same
  calls plus our `attempt` on every call after the claim (which turns on
  the lease checks), the batched upload (`put_batch` + `commit_run`), and
  refusals with a `code` (LEASE_LOST, STALE_ATTEMPT, ...).

Which one a deployment speaks is learnt once, by calling `docs:putBatch`
with no arguments: "no such function" means original, a validation error
means extended. Nothing is written by the probe either way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr, ValidationError

from fondation_contracts.fondation import (
    MISSING_GITHUB_TOKEN,
    MISSING_USER,
    FinalStatus,
    HeartbeatStatus,
    LogLevel,
)
from fondation_operator.convexbridge.client import ConvexClient, ConvexFunctionError
from fondation_operator.convexbridge.models import (
    AppendLogArgs,
    ClaimArgs,
    ClaimedJob,
    CommitRunArgs,
    CompleteArgs,
    DocFile,
    DocsSummary,
    GitHubTokenArgs,
    HeartbeatArgs,
    JobArgs,
    JobResult,
    JobRow,
    LatestJobArgs,
    PutBatchArgs,
    RepositoryArgs,
    RepositoryRecord,
    RetryOrFailArgs,
    StatusResult,
    UpdateStatusArgs,
    UploadResult,
    UpsertDocumentsArgs,
    UserArgs,
    UserRecord,
    parse_claim,
)
from fondation_operator.convexbridge.settings import FunctionNames

log = logging.getLogger(__name__)

Contract = Literal["original", "extended"]

LEASE_LOST_CODES = frozenset(
    {"LEASE_LOST", "STALE_ATTEMPT", "JOB_CANCELED", "JOB_FINISHED", "NOT_FOUND"}
)
"""Refusals after which the job is no longer ours to run."""
SUPERSEDED_CODE = "SUPERSEDED"
"""The project's refusal of an upload for a job `jobs:regenerate` replaced."""

# Fondation's functions throw plain errors for the same situations:
# "Job not found or not owned by worker" (queue:*), "Job not found".
_LEASE_LOST_MESSAGES = re.compile(
    r"not owned by (this )?worker|not locked by this worker|job not found", re.IGNORECASE
)


def lost_lease(error: ConvexFunctionError) -> bool:
    if error.code is not None:
        return error.code in LEASE_LOST_CODES
    return bool(_LEASE_LOST_MESSAGES.search(error.message))


class UnexpectedAnswer(ConvexFunctionError):
    """A function answered with a value this contract does not describe."""


class CannotRun(Exception):
    """The job lacks what it needs to run (a user, a token...); the message is the UI's."""


@dataclass(frozen=True)
class JobRef:
    """One attempt at one Convex job, as the lease checks know it."""

    job_id: str
    attempt: int


class ConvexApi:
    def __init__(
        self,
        client: ConvexClient,
        functions: FunctionNames,
        *,
        worker_id: str,
        lease_ms: int,
        contract: Contract | None = None,
    ) -> None:
        self.client = client
        self.functions = functions
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self.contract: Contract | None = contract

    @property
    def extended(self) -> bool:
        return self.contract == "extended"

    def _attempt(self, job: JobRef) -> int | None:
        return job.attempt if self.extended else None

    async def detect(self) -> Contract:
        """Learn the deployment's flavour (see the module's docstring)."""
        if self.contract is None:
            try:
                await self.client.mutation(self.functions.put_batch, {})
            except ConvexFunctionError as error:
                self.contract = "original" if error.missing_function else "extended"
            else:  # pragma: no cover - putBatch requires arguments
                self.contract = "extended"
        return self.contract

    # ---- claiming -----------------------------------------------------------

    async def claim_one(self) -> ClaimedJob | None:
        args = ClaimArgs(worker_id=self.worker_id, lease_ms=self.lease_ms)
        value = await self.client.mutation(self.functions.claim_one, args)
        try:
            return parse_claim(value)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise UnexpectedAnswer(
                self.functions.claim_one, f"a claimed job without {fields}"
            ) from None

    async def repository(self, repository_id: str) -> RepositoryRecord | None:
        """The job's `repositories` row, if the deployment has a query for it."""
        try:
            value = await self.client.query(
                self.functions.repository, RepositoryArgs(repository_id=repository_id)
            )
        except ConvexFunctionError as error:
            if error.missing_function:
                return None
            raise
        if not isinstance(value, dict):
            return None
        return RepositoryRecord.model_validate(value)

    # ---- the lease and the status ---------------------------------------------

    async def heartbeat(
        self,
        job: JobRef,
        *,
        status: HeartbeatStatus | None = None,
        progress: str | None = None,
        current_step: int | None = None,
        total_steps: int | None = None,
    ) -> StatusResult:
        """Renew the lease and, as Fondation's worker does, report status and progress."""
        args = HeartbeatArgs(
            job_id=job.job_id,
            worker_id=self.worker_id,
            lease_ms=self.lease_ms,
            status=status,
            progress=progress,
            current_step=current_step,
            total_steps=total_steps,
            attempt=self._attempt(job),
        )
        return _status(await self.client.mutation(self.functions.heartbeat, args))

    async def update_status(
        self, job: JobRef, token: SecretStr, status: FinalStatus, *, error: str
    ) -> StatusResult:
        """End a job that cannot run (`failed`) or was cancelled in the cluster."""
        args = UpdateStatusArgs(
            job_id=job.job_id,
            status=status,
            callback_token=token,
            error=error,
            worker_id=self.worker_id if self.extended else None,
            attempt=self._attempt(job),
        )
        return _status(await self.client.mutation(self.functions.update_status, args))

    async def job_row(self, job_id: str) -> JobRow | None:
        """The job as the UI sees it now; None when it no longer exists."""
        value = await self.client.query(self.functions.get_job, JobArgs(job_id=job_id))
        return JobRow.model_validate(value) if isinstance(value, dict) else None

    async def latest_job(self, repository_id: str) -> JobRow | None:
        """The repository's newest job (`jobs:regenerate` makes a new one)."""
        value = await self.client.query(
            self.functions.latest_job, LatestJobArgs(repository_id=repository_id)
        )
        return JobRow.model_validate(value) if isinstance(value, dict) else None

    async def github_token(self, user_id: str) -> str:
        """The user's GitHub token as stored (github_tokens.decode reads it)."""
        user = await self.client.query(self.functions.user, UserArgs(user_id=user_id))
        if not isinstance(user, dict):
            raise CannotRun(MISSING_USER)
        record = UserRecord.model_validate(user)
        if record.github_id is None or record.github_id == "":
            raise CannotRun(MISSING_GITHUB_TOKEN)
        token = await self.client.query(
            self.functions.github_token, GitHubTokenArgs(github_id=record.github_id)
        )
        if not isinstance(token, str) or not token.strip():
            raise CannotRun(MISSING_GITHUB_TOKEN)
        return token

    async def append_log(self, job: JobRef, level: LogLevel, msg: str) -> None:
        args = AppendLogArgs(
            job_id=job.job_id,
            level=level,
            msg=msg,
            worker_id=self.worker_id if self.extended else None,
            attempt=self._attempt(job),
        )
        await self.client.mutation(self.functions.append_log, args)

    async def complete(self, job: JobRef, result: JobResult, docs_count: int) -> StatusResult:
        if not self.extended:
            result = JobResult(success=result.success, message=result.message, data=result.data)
        args = CompleteArgs(
            job_id=job.job_id,
            worker_id=self.worker_id,
            result=result,
            docs_count=docs_count,
            attempt=self._attempt(job),
        )
        return _status(await self.client.mutation(self.functions.complete, args))

    async def retry_or_fail(self, job: JobRef, error: str) -> StatusResult:
        args = RetryOrFailArgs(
            job_id=job.job_id,
            worker_id=self.worker_id,
            error=error,
            attempt=self._attempt(job),
        )
        return _status(await self.client.mutation(self.functions.retry_or_fail, args))

    # ---- documents --------------------------------------------------------------

    async def upsert_documents(
        self,
        job: JobRef,
        repository_id: str,
        run_id: str,
        files: list[DocFile],
        summary: DocsSummary,
    ) -> UploadResult:
        """The one-call replacement of the job's documents (both flavours)."""
        args = UpsertDocumentsArgs(
            job_id=job.job_id,
            repository_id=repository_id,
            run_id=run_id,
            files=files,
            summary=summary,
            worker_id=self.worker_id if self.extended else None,
            attempt=self._attempt(job),
        )
        return _upload(await self.client.mutation(self.functions.upsert_documents, args))

    async def put_batch(self, job: JobRef, run_id: str, files: list[DocFile]) -> UploadResult:
        args = PutBatchArgs(
            job_id=job.job_id,
            worker_id=self.worker_id,
            attempt=job.attempt,
            run_id=run_id,
            files=files,
        )
        return _upload(await self.client.mutation(self.functions.put_batch, args))

    async def commit_run(
        self, job: JobRef, run_id: str, summary: DocsSummary, expected_count: int
    ) -> UploadResult:
        args = CommitRunArgs(
            job_id=job.job_id,
            worker_id=self.worker_id,
            attempt=job.attempt,
            run_id=run_id,
            summary=summary,
            expected_count=expected_count,
        )
        return _upload(await self.client.mutation(self.functions.commit_run, args))


def _status(value: object) -> StatusResult:
    return StatusResult.model_validate(value) if isinstance(value, dict) else StatusResult()


def _upload(value: object) -> UploadResult:
    return UploadResult.model_validate(value) if isinstance(value, dict) else UploadResult()
