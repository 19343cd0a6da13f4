"""Getting one valid answer from a backend: cache, ask, validate, retry.

This is the loop every step goes through. The cache is consulted first; on
a miss the backend is asked, and its answer validated. A refused answer is
asked again with the problems appended to the prompt (the `feedback`
template), up to `max_attempts` times. A backend that raises counts as a
failed attempt too, except a `BackendError` that says asking again cannot
help (refused credentials), which ends the loop at once. Only an answer
that passed validation is cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import fondation_prompts
from fondation_contracts.course import StepUsage
from fondation_runner.backends.base import Backend, BackendError, StepRequest
from fondation_runner.cache import CacheKey, StepCache
from fondation_runner.validate import ValidationFailed

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 3


class StepFailed(Exception):
    """No valid answer after every attempt; `problems` are the last attempt's."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what = what
        self.problems = problems
        super().__init__(f"{what}: {'; '.join(problems)}")


@dataclass(frozen=True)
class Valid(Generic[T]):
    value: T
    text: str
    """The answer as the backend wrote it (a cached answer is text too)."""


@dataclass
class Meter:
    """What one step cost, summed over all of its calls."""

    step: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    cache_hits: int = 0

    def add(self, usage: StepUsage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost_usd += usage.cost_usd
        self.llm_calls += usage.llm_calls

    def usage(self) -> StepUsage:
        return StepUsage(
            step=self.step,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=round(self.cost_usd, 6),
            llm_calls=self.llm_calls,
            cached=self.llm_calls == 0 and self.cache_hits > 0,
        )


RetryNotice = Callable[[str], Awaitable[None]]
"""Told, in one line, why an attempt was refused (for progress events)."""


@dataclass
class Asker:
    backend: Backend
    source_dir: Path
    revision: str
    language: str = "en"
    model: str = ""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    cache: StepCache | None = None
    prompt_version: str = field(default=fondation_prompts.PROMPT_VERSION)

    async def ask(
        self,
        step: str,
        *,
        prompt: str,
        inputs: dict[str, Any],
        validate: Callable[[str], T],
        meter: Meter,
        on_retry: RetryNotice,
        what: str = "",
    ) -> Valid[T]:
        """A validated answer for `step`, or StepFailed.

        `what` names the piece of work in messages (`chapter 3 (Router)`);
        it defaults to the step.
        """
        what = what or step
        key = CacheKey(
            revision=self.revision,
            prompt_version=self.prompt_version,
            model=self.model,
            language=self.language,
            backend=self.backend.name,
            step=step,
            inputs=inputs,
        )
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            try:
                value = validate(cached)
            except ValidationFailed:
                pass  # validation rules changed since it was stored: ask again
            else:
                meter.cache_hits += 1
                return Valid(value, cached)

        problems: list[str] = []
        for attempt in range(1, self.max_attempts + 1):
            request = StepRequest(
                step=step,
                prompt=prompt if attempt == 1 else prompt + _feedback(attempt - 1, problems),
                clone_dir=self.source_dir,
                inputs=inputs,
                attempt=attempt,
                language=self.language,
                model=self.model,
            )
            try:
                answer = await self.backend.answer(request)
            except BackendError as error:
                if error.usage is not None:
                    meter.add(error.usage)
                problems = [f"the backend failed ({error.reason}): {error}"]
                if not error.retryable:
                    raise StepFailed(what, problems) from None
            except Exception as error:  # a failed call is a failed attempt, not a crash
                problems = [f"the backend failed: {type(error).__name__}: {error}"]
            else:
                meter.add(answer.usage)
                try:
                    value = validate(answer.text)
                except ValidationFailed as refused:
                    problems = refused.problems
                else:
                    if self.cache:
                        self.cache.put(key, answer.text)
                    return Valid(value, answer.text)
            if attempt < self.max_attempts:
                await on_retry(
                    f"{what}: attempt {attempt}/{self.max_attempts} refused: {'; '.join(problems)}"
                )
        raise StepFailed(what, problems)


def _feedback(attempt: int, problems: list[str]) -> str:
    return fondation_prompts.render(
        "feedback",
        attempt=str(attempt),
        errors="\n".join(f"- {problem}" for problem in problems),
    )
