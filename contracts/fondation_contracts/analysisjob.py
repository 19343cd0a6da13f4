"""The AnalysisJob custom resource: its spec (what to analyse) and status.

The API server validates the spec (crds/analysisjob.yaml: OpenAPI + CEL), so
these models mirror that schema rather than re-validate it; they give the
operator typed access and a single place where defaults live.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUP = "fondation.dev"
VERSION = "v1alpha1"
KIND = "AnalysisJob"
PLURAL = "analysisjobs"
API_VERSION = f"{GROUP}/{VERSION}"

TOTAL_STEPS = 6

LABEL_ANALYSISJOB = "fondation.dev/analysisjob"
LABEL_ATTEMPT = "fondation.dev/attempt"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "fondation-operator"
LABEL_CREDENTIALS = "fondation.dev/credentials"
"""A Secret carrying this label with value "true" may be named in
`spec.credentials.secretName` (its owner opted in)."""

ALLOWED_HOSTS_ENV = "FONDATION_ALLOWED_REPOSITORY_HOSTS"
"""Repository hosts (names, addresses or CIDR networks, comma-separated) a
runner may clone from although they are not public: the operator's setting
of the same name, passed to each runner."""


def host_list(value: str) -> list[str]:
    """`a.example, 10.0.0.0/8` -> `["a.example", "10.0.0.0/8"]`."""
    return [h.strip().lower() for h in value.split(",") if h.strip()]


ANNOTATION_AWAITING_CREDENTIALS = "fondation.dev/awaiting-credentials"
"""Set by the Convex bridge on an AnalysisJob whose Git credentials Secret it
has yet to write (the Secret is owned by the AnalysisJob, so it can only be
created after it); the reconciler starts no Job while it is there."""

# The Git credentials Secret (spec.source.credentials.secretName), mounted in
# the runner at GIT_CREDENTIALS_DIR and read by the clone alone.
GIT_TOKEN_KEY = "token"
GIT_USERNAME_KEY = "username"
GIT_SSH_KEY = "ssh-privatekey"
GIT_KNOWN_HOSTS_KEY = "known_hosts"
GIT_DEFAULT_USERNAME = "x-access-token"
GIT_CREDENTIALS_DIR = "/var/run/fondation/git"
GIT_CREDENTIALS_DIR_ENV = "FONDATION_GIT_CREDENTIALS_DIR"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Phase(enum.StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


class GitCredentials(_Model):
    secret_name: str = Field("", alias="secretName")


class Source(_Model):
    repository: str
    ref: str = ""
    sub_path: str = Field("", alias="subPath")
    credentials: GitCredentials | None = None


class Credentials(_Model):
    secret_name: str = Field("", alias="secretName")


class ResourceList(_Model):
    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = Field(None, alias="ephemeral-storage")


class Resources(_Model):
    requests: ResourceList = ResourceList()
    limits: ResourceList = ResourceList()


class ConvexRef(_Model):
    job_id: str = Field("", alias="jobId")


class AnalysisJobSpec(_Model):
    source: Source
    language: str = "en"
    model: str = ""
    backend: str = "claude"
    max_chapters: int = Field(10, alias="maxChapters")
    credentials: Credentials = Credentials()
    timeout_seconds: int = Field(3600, alias="timeoutSeconds")
    retries: int = 1
    resources: Resources = Resources()
    cancel: bool = False
    convex: ConvexRef = ConvexRef()


class Condition(_Model):
    type: str
    status: str
    reason: str
    message: str = ""
    observed_generation: int = Field(0, alias="observedGeneration")
    last_transition_time: str = Field("", alias="lastTransitionTime")


class Progress(_Model):
    step: int = 0
    total_steps: int = Field(TOTAL_STEPS, alias="totalSteps")
    step_name: str = Field("", alias="stepName")
    label: str = ""
    message: str = ""
    updated_at: str = Field("", alias="updatedAt")


class Result(_Model):
    commit: str = ""
    documents: int = 0
    chapters: int = 0
    result_config_maps: list[str] = Field(default_factory=list, alias="resultConfigMaps")
    cost_usd: float = Field(0.0, alias="costUsd")
    input_tokens: int = Field(0, alias="inputTokens")
    output_tokens: int = Field(0, alias="outputTokens")
    partial: bool = False


class Failure(_Model):
    reason: str
    message: str = ""


class AnalysisJobStatus(_Model):
    phase: Phase = Phase.PENDING
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int = Field(0, alias="observedGeneration")
    attempt: int = 0
    queue_revision: int = Field(0, alias="queueRevision")
    retry_at: str = Field("", alias="retryAt")
    job_name: str = Field("", alias="jobName")
    pod_name: str = Field("", alias="podName")
    started_at: str = Field("", alias="startedAt")
    completed_at: str = Field("", alias="completedAt")
    progress: Progress | None = None
    result: Result | None = None
    failure: Failure | None = None


def parse_spec(raw: dict[str, Any]) -> AnalysisJobSpec:
    return AnalysisJobSpec.model_validate(raw)


def parse_status(raw: dict[str, Any] | None) -> AnalysisJobStatus:
    return AnalysisJobStatus.model_validate(raw or {})
