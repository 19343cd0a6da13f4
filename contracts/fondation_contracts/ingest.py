"""What a runner reports to the operator's ingest endpoint.

The runner holds no Kubernetes or Convex rights; it proves who it is with the
per-job token mounted from the job's Secret and posts these bodies:

    POST /v1/namespaces/{namespace}/analysisjobs/{name}/events   ProgressEvent
    POST /v1/namespaces/{namespace}/analysisjobs/{name}/course   Course

with `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fondation_contracts.course import StepUsage
from fondation_contracts.text import clean, one_line

STEP_NAMES: tuple[str, ...] = (
    "abstractions",
    "relationships",
    "order",
    "chapters",
    "review",
    "tutorial",
)

TOKEN_HEADER = "Authorization"
ATTEMPT_HEADER = "X-Fondation-Attempt"
ATTEMPT_ENV = "FONDATION_ATTEMPT"
TOKEN_SECRET_KEY = "token"
INGEST_URL_ENV = "FONDATION_INGEST_URL"
TOKEN_FILE_ENV = "FONDATION_TOKEN_FILE"


class StepState(enum.StrEnum):
    CLONING = "cloning"
    STARTED = "started"
    RETRYING = "retrying"
    FINISHED = "finished"
    FAILED = "failed"


class ProgressEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    step: int = Field(ge=0, le=len(STEP_NAMES))
    step_name: str = Field(alias="stepName", max_length=64)
    state: StepState
    message: str = Field("", max_length=2000)
    commit: str = Field("", max_length=64, pattern=r"^[0-9a-f]*$")
    usage: StepUsage | None = None

    @field_validator("message")
    @classmethod
    def _printable(cls, value: str) -> str:
        """Shown in status, Events and `kubectl`: no escapes or controls."""
        return clean(value)

    @field_validator("step_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return one_line(value)
