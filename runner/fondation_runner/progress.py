"""Progress events, and the one-line rendering people read.

The pipeline reports each step's start, retries, end or failure as a
`ProgressEvent` to an `EventSink`. Sinks decide where events go (the
operator's ingest endpoint, stdout for `kubectl logs`, a terminal display);
`ProgressLog` turns an event into the line all of them print, e.g.

    [3/6 order] finished in 1.2s (0 LLM calls, cached): 7 chapters
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fondation_contracts.course import StepUsage
from fondation_contracts.ingest import STEP_NAMES, ProgressEvent, StepState

EventSink = Callable[[ProgressEvent], Awaitable[None]]

CLONE_STEP = 0
CLONE_STEP_NAME = "clone"
MAX_MESSAGE_CHARS = 2000


def step_number(step_name: str) -> int:
    """1-based number of a pipeline step (0 for the clone)."""
    return CLONE_STEP if step_name == CLONE_STEP_NAME else STEP_NAMES.index(step_name) + 1


def make_event(
    step_name: str,
    state: StepState,
    message: str = "",
    *,
    commit: str = "",
    usage: StepUsage | None = None,
) -> ProgressEvent:
    """An event, with its message cut to what the contract accepts."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return ProgressEvent(
        step=step_number(step_name),
        step_name=step_name,
        state=state,
        message=message,
        commit=commit,
        usage=usage,
    )


async def discard(event: ProgressEvent) -> None:
    """The sink that drops everything (for callers that do not watch)."""


class ProgressLog:
    """Renders events as lines, timing each step from its start to its end."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[str, float] = {}

    def line(self, event: ProgressEvent) -> str:
        prefix = f"[{event.step}/{len(STEP_NAMES)} {event.step_name}]"
        if event.state in (StepState.STARTED, StepState.CLONING):
            self._started[event.step_name] = self._clock()
            verb = "cloning" if event.state is StepState.CLONING else "started"
            return _join(f"{prefix} {verb}", event.message)
        if event.state is StepState.RETRYING:
            return _join(f"{prefix} retrying", event.message)
        elapsed = self._clock() - self._started.pop(event.step_name, self._clock())
        if event.state is StepState.FAILED:
            return _join(f"{prefix} failed after {elapsed:.1f}s", event.message)
        usage = f" ({describe_usage(event.usage)})" if event.usage else ""
        return _join(f"{prefix} finished in {elapsed:.1f}s{usage}", event.message)


def describe_usage(usage: StepUsage) -> str:
    calls = f"{usage.llm_calls} LLM call{'' if usage.llm_calls == 1 else 's'}"
    parts = [calls]
    if usage.input_tokens or usage.output_tokens:
        parts.append(f"{usage.input_tokens} in / {usage.output_tokens} out tokens")
    if usage.cost_usd:
        parts.append(f"${usage.cost_usd:.4f}")
    if usage.cached:
        parts.append("cached")
    return ", ".join(parts)


def _join(head: str, message: str) -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return f"{head}: {first_line}" if first_line else head
