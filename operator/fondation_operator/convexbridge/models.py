"""What crosses the wire to and from the Convex functions, as pydantic models.

Arguments are strict (`extra="forbid"`): Convex validators refuse unknown
fields, so a typo must fail here, in a test, not in production. Results are
lenient (`extra="ignore"`, optional fields): the same model reads the answer
of Fondation's original functions and of the project's own, which return
more.

Fields that exist only in the project's own functions (`attempt`, `sha256`,
...) are None by default and left out of the call (`exclude_none`), so the
original functions, which would refuse them, never see them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

from fondation_contracts.fondation import (
    STOPPED_STATUSES,
    FinalStatus,
    HeartbeatStatus,
    LogLevel,
)
from fondation_operator.convexbridge.client import ConvexArgs

DocKind = Literal["yaml", "chapter", "tutorial", "toc"]


class _Result(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# ---- claiming ---------------------------------------------------------------


class ClaimArgs(ConvexArgs):
    worker_id: str = Field(alias="workerId")
    lease_ms: int = Field(alias="leaseMs")


class RepositoryRecord(_Result):
    """The fields of a `repositories` row the bridge can use."""

    url: str | None = None
    full_name: str | None = Field(None, alias="fullName")
    default_branch: str | None = Field(None, alias="defaultBranch")


class ClaimedJob(_Result):
    """A job `claimOne` handed us. The callback token is a SecretStr: a repr,
    a log line or an error message built from this model cannot show it."""

    id: str = Field(min_length=1, validation_alias=AliasChoices("_id", "id"))
    repository_id: str | None = Field(None, alias="repositoryId")
    user_id: str | None = Field(None, alias="userId")
    repository_url: str | None = Field(None, alias="repositoryUrl")
    branch: str | None = None
    language: str | None = None
    prompt: str | None = None
    callback_token: SecretStr | None = Field(None, alias="callbackToken")
    attempts: int | None = None
    attempt: int | None = None
    max_attempts: int | None = Field(None, alias="maxAttempts")
    repository: RepositoryRecord | None = None

    @property
    def current_attempt(self) -> int:
        """Ours return `attempt`; the original returns `attempts` (failures so far)."""
        if self.attempt is not None:
            return self.attempt
        return (self.attempts or 0) + 1


class RepositoryArgs(ConvexArgs):
    repository_id: str = Field(alias="repositoryId")


# ---- the lease and the status ---------------------------------------------


class HeartbeatArgs(ConvexArgs):
    """`queue:heartbeat`: the lease, and the status and progress the UI shows."""

    job_id: str = Field(alias="jobId")
    worker_id: str = Field(alias="workerId")
    lease_ms: int = Field(alias="leaseMs")
    status: HeartbeatStatus | None = None
    progress: str | None = None
    current_step: int | None = Field(None, alias="currentStep")
    total_steps: int | None = Field(None, alias="totalSteps")
    attempt: int | None = None


class JobArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")


class LatestJobArgs(ConvexArgs):
    repository_id: str = Field(alias="repositoryId")


class JobRow(_Result):
    """The fields of a `jobs` row that decide whether the run may go on."""

    id: str = Field("", validation_alias=AliasChoices("_id", "id"))
    status: str = ""
    cancel_requested: bool | None = Field(None, alias="cancelRequested")
    locked_by: str | None = Field(None, alias="lockedBy")
    superseded_by: str | None = Field(None, alias="supersededBy")
    """Set by the project's `jobs:regenerate`; Fondation's leaves no mark."""
    created_at: float | None = Field(
        None, validation_alias=AliasChoices("_creationTime", "createdAt")
    )

    @property
    def stopped(self) -> bool:
        """Cancelled, failed, dead or completed: over, whoever holds the lease."""
        return self.status in STOPPED_STATUSES or bool(self.cancel_requested)


class UserArgs(ConvexArgs):
    user_id: str = Field(alias="userId")


class UserRecord(_Result):
    github_id: str | int | None = Field(None, alias="githubId")


class GitHubTokenArgs(ConvexArgs):
    github_id: str | int = Field(alias="githubId")


class AppendLogArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    level: LogLevel
    msg: str
    worker_id: str | None = Field(None, alias="workerId")
    attempt: int | None = None


class UpdateStatusArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    status: FinalStatus
    callback_token: SecretStr = Field(alias="callbackToken")
    progress: str | None = None
    current_step: int | None = Field(None, alias="currentStep")
    total_steps: int | None = Field(None, alias="totalSteps")
    error: str | None = None
    worker_id: str | None = Field(None, alias="workerId")
    attempt: int | None = None


class JobResult(BaseModel):
    """What `jobs:complete` stores; the original accepts only success/message/data."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    success: bool
    message: str | None = None
    data: str | None = None
    commit: str | None = None
    documents: int | None = None
    chapters: int | None = None
    partial: bool | None = None
    cost_usd: float | None = Field(None, alias="costUsd")
    input_tokens: int | None = Field(None, alias="inputTokens")
    output_tokens: int | None = Field(None, alias="outputTokens")


class CompleteArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    worker_id: str = Field(alias="workerId")
    result: JobResult
    docs_count: int | None = Field(None, alias="docsCount")
    attempt: int | None = None


class RetryOrFailArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    worker_id: str = Field(alias="workerId")
    error: str
    attempt: int | None = None


class StatusResult(_Result):
    """Answer of heartbeat/updateStatus/complete/retryOrFail: whatever it says."""

    status: str | None = None
    attempts: int | None = None
    success: bool | None = None


# ---- documents ----------------------------------------------------------------


class DocFile(BaseModel):
    """One document as `docs:upsertFromJob` / `docs:putBatch` take it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    slug: str
    title: str
    chapter_index: int | None = Field(None, alias="chapterIndex")
    content: str
    kind: DocKind
    sha256: str | None = None
    source_path: str | None = Field(None, alias="sourcePath")


class DocsSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    chapters_count: int = Field(alias="chaptersCount")
    tutorials_count: int = Field(alias="tutorialsCount")
    generated_at: int = Field(alias="generatedAt")


class UpsertDocumentsArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    repository_id: str = Field(alias="repositoryId")
    run_id: str | None = Field(None, alias="runId")
    files: list[DocFile]
    summary: DocsSummary
    worker_id: str | None = Field(None, alias="workerId")
    attempt: int | None = None


class PutBatchArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    worker_id: str = Field(alias="workerId")
    attempt: int
    run_id: str = Field(alias="runId")
    files: list[DocFile]


class CommitRunArgs(ConvexArgs):
    job_id: str = Field(alias="jobId")
    worker_id: str = Field(alias="workerId")
    attempt: int
    run_id: str = Field(alias="runId")
    summary: DocsSummary
    expected_count: int = Field(alias="expectedCount")


class UploadResult(_Result):
    docs_count: int | None = Field(None, alias="docsCount")
    inserted: int | None = None
    updated: int | None = None
    unchanged: int | None = None


def parse_claim(value: Any) -> ClaimedJob | None:
    """claimOne's answer: a job or null."""
    return None if value is None else ClaimedJob.model_validate(value)
