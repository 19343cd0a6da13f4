"""Test doubles and builders shared by the runner tests."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fondation_contracts.course import StepUsage
from fondation_contracts.ingest import ProgressEvent
from fondation_runner.backends.base import Answer, StepRequest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLE_REPO = FIXTURES / "sample-repo"
OUTPUTS = FIXTURES / "outputs"

Script = Callable[[StepRequest], str]


@dataclass
class ScriptedBackend:
    """Answers each step from a script: a list of texts (one per call, the last one
    repeated) or a function of the request. Records every request, and the
    highest number of calls it was serving at once."""

    scripts: dict[str, list[str] | Script]
    name: str = "scripted"
    delay: float = 0.0
    """Seconds each call takes (lets concurrent calls overlap, for the bound test)."""
    requests: list[StepRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def answer(self, request: StepRequest) -> Answer:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            script = self.scripts[request.step]
            if callable(script):
                text = script(request)
            else:
                calls = sum(1 for r in self.requests if r.step == request.step)
                text = script[min(calls, len(script)) - 1]
            return Answer(text=text, usage=StepUsage(step=request.step, llm_calls=1))
        finally:
            self.in_flight -= 1

    def calls(self, step: str) -> list[StepRequest]:
        return [r for r in self.requests if r.step == step]


@dataclass
class CountingBackend:
    """Wraps a backend and counts the calls that reach it."""

    inner: object
    calls: int = 0

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", "inner"))

    async def answer(self, request: StepRequest) -> Answer:
        self.calls += 1
        answer: Answer = await self.inner.answer(request)  # type: ignore[attr-defined]
        return answer


@dataclass
class EventLog:
    """An event sink that keeps what it is given."""

    events: list[ProgressEvent] = field(default_factory=list)

    async def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def states(self, step_name: str) -> list[str]:
        return [e.state.value for e in self.events if e.step_name == step_name]


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-c",
            "user.email=tests@example.invalid",
            "-c",
            "user.name=tests",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def make_git_repo(path: Path, files: Iterable[tuple[str, str]] = ()) -> Path:
    """A git repository at `path` holding the sample project (and `files`), committed."""
    shutil.copytree(SAMPLE_REPO, path)
    for relative, content in files:
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        (path / relative).write_text(content)
    git(path, "init", "--quiet")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--message", "sample project")
    return path
