"""What a runner pod is asked to do, read from its environment.

The operator's job builder sets these variables on the runner container
(see fondation_operator.jobbuilder); `python -m fondation_runner` flags of
the same names (`--max-chapters`...) override them, for running by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fondation_contracts.analysisjob import (
    ALLOWED_HOSTS_ENV,
    GIT_CREDENTIALS_DIR_ENV,
    host_list,
)
from fondation_runner.clone import DEFAULT_MAX_BYTES
from fondation_runner.pipeline import DEFAULT_MAX_CHAPTERS, DEFAULT_PARALLELISM

ENVIRONMENT: dict[str, str] = {
    "repository": "FONDATION_REPOSITORY",
    "ref": "FONDATION_REF",
    "sub_path": "FONDATION_SUB_PATH",
    "language": "FONDATION_LANGUAGE",
    "model": "FONDATION_MODEL",
    "max_chapters": "FONDATION_MAX_CHAPTERS",
    "backend": "FONDATION_BACKEND",
    "workspace": "FONDATION_WORKSPACE",
    "cache_dir": "FONDATION_CACHE_DIR",
    "parallelism": "FONDATION_PARALLELISM",
    "namespace": "FONDATION_NAMESPACE",
    "analysis": "FONDATION_ANALYSIS",
    "attempt": "FONDATION_ATTEMPT",
    "claude_credentials_dir": "FONDATION_CLAUDE_CREDENTIALS_DIR",
    "git_credentials_dir": GIT_CREDENTIALS_DIR_ENV,
    "max_repository_bytes": "FONDATION_MAX_REPOSITORY_BYTES",
    "allowed_hosts": ALLOWED_HOSTS_ENV,
}
"""Field of RunnerJob -> environment variable. The ingest URL and token file
are read by `report.IngestTarget` (names in fondation_contracts.ingest)."""


class RunnerJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repository: str = Field(min_length=1)
    ref: str = ""
    sub_path: str = ""
    language: str = "en"
    model: str = ""
    max_chapters: int = Field(DEFAULT_MAX_CHAPTERS, ge=1, le=30)
    backend: Literal["claude", "offline"] = "claude"
    workspace: Path = Path("/workspace")
    cache_dir: Path | None = None
    parallelism: int = Field(DEFAULT_PARALLELISM, ge=1, le=32)
    namespace: str = ""
    analysis: str = ""
    attempt: int = Field(1, ge=1)
    claude_credentials_dir: Path | None = None
    git_credentials_dir: Path | None = None
    clone_only: bool = False
    """Clone and stop: the init container of a private repository's pod."""
    max_repository_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1)
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return host_list(value) if isinstance(value, str) else value

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], overrides: Mapping[str, Any]) -> RunnerJob:
        """Environment values, then non-empty overrides on top; empty variables are unset."""
        values: dict[str, Any] = {
            field: environ[variable]
            for field, variable in ENVIRONMENT.items()
            if environ.get(variable, "").strip()
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return cls.model_validate(values)

    @property
    def clone_dir(self) -> Path:
        return self.workspace / "repository"

    @property
    def output_base(self) -> Path:
        return self.workspace / "output"

    @property
    def claude_home(self) -> Path:
        return self.workspace / "claude-home"
