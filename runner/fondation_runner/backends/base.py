"""The contract between the pipeline and a backend.

The pipeline owns prompts, parsing, validation and retries; a backend only
turns one `StepRequest` into text. Both backends answer in the same format
(YAML for steps 1-3, Markdown for 4-6), so one parse-and-validate path serves
both and the offline backend exercises exactly the plumbing the LLM uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fondation_contracts.course import StepUsage


@dataclass(frozen=True)
class StepRequest:
    step: str
    """One of fondation_contracts.ingest.STEP_NAMES."""
    prompt: str
    """The rendered prompt, including any validation feedback from a previous try."""
    clone_dir: Path
    """The repository checkout; the backend may read it and nothing else."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """Structured inputs of the step (earlier steps' validated results, the
    chapter being written...), for backends that do not read prompts."""
    attempt: int = 1
    language: str = "en"
    model: str = ""


@dataclass(frozen=True)
class Answer:
    text: str
    usage: StepUsage


FailureReason = Literal["timeout", "max_turns", "auth", "api", "cli", "empty"]


class BackendError(Exception):
    """A backend could not answer a step.

    The message goes to logs, progress events and retry prompts, so it never
    contains a credential. `usage` is what the failed attempt still cost (a
    timed-out agent has already spent tokens), so the accounting stays honest;
    `retryable` is False when asking again cannot help (credentials refused).
    """

    def __init__(
        self, message: str, *, reason: FailureReason, usage: StepUsage | None = None
    ) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason
        self.usage = usage

    @property
    def retryable(self) -> bool:
        return self.reason != "auth"


class Backend(Protocol):
    name: str

    async def answer(self, request: StepRequest) -> Answer: ...
