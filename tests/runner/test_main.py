from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fondation_contracts.course import Course
from fondation_runner.job import RunnerJob
from fondation_runner.main import EXIT_BAD_JOB, EXIT_FAILED, EXIT_OK, main, run
from tests.runner.helpers import git
from tests.runner.ingest_server import IngestServer

TOKEN = "tok-9f8e7d"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return {"FONDATION_TOKEN_FILE": str(token)}


def job(repository: Path, workspace: Path, **changes: object) -> RunnerJob:
    values: dict[str, object] = {
        "repository": str(repository),
        "backend": "offline",
        "workspace": workspace,
        "namespace": "team-a",
        "analysis": "course-1",
    }
    values.update(changes)
    return RunnerJob.model_validate(values)


async def test_a_run_reports_every_step_and_the_course(
    git_repo: Path, tmp_path: Path, environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server = IngestServer()
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    try:
        code = await run(job(git_repo, tmp_path / "ws"), environ=environ)
    finally:
        await server.stop()

    assert code == EXIT_OK
    events = server.of("events")
    assert [(e["stepName"], e["state"]) for e in events[:2]] == [
        ("clone", "cloning"),
        ("clone", "finished"),
    ]
    commit = git(git_repo, "rev-parse", "HEAD")
    assert events[1]["commit"] == commit
    finished = [e["step"] for e in events if e["state"] == "finished"]
    assert finished == [0, 1, 2, 3, 4, 5, 6]
    assert all(r.authorization == f"Bearer {TOKEN}" for r in server.requests)
    assert all((r.namespace, r.name) == ("team-a", "course-1") for r in server.requests)
    [body] = server.of("course")
    course = Course.model_validate(body)
    assert (course.analysis, course.commit, course.partial) == ("course-1", commit, False)
    assert len(course.chapters) == 7
    assert len(course.usage.steps) == 6
    assert server.requests[-1].what == "course"
    output = capsys.readouterr()
    assert "[0/6 clone] cloning: " in output.out
    assert "[6/6 tutorial] finished in" in output.out
    assert output.out.rstrip().splitlines()[-1].startswith("course: 25 documents (7 chapters)")
    assert TOKEN not in output.out + output.err


async def test_a_failed_clone_is_reported_then_exits_non_zero(
    git_repo: Path, tmp_path: Path, environ: dict[str, str]
) -> None:
    server = IngestServer()
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    try:
        code = await run(job(git_repo, tmp_path / "ws", ref="no-such-branch"), environ=environ)
    finally:
        await server.stop()

    assert code == EXIT_FAILED
    assert [(e["stepName"], e["state"]) for e in server.of("events")] == [
        ("clone", "cloning"),
        ("clone", "failed"),
    ]
    assert "cannot fetch 'no-such-branch'" in server.of("events")[-1]["message"]
    assert server.of("course") == []


async def test_missing_claude_credentials_fail_the_run(
    git_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run(job(git_repo, tmp_path / "ws", backend="claude"), environ={})

    assert code == EXIT_FAILED
    assert "failed after" in capsys.readouterr().out
    assert not (tmp_path / "ws" / "repository").exists()  # stopped before cloning


async def test_a_refused_course_fails_the_run(
    git_repo: Path, tmp_path: Path, environ: dict[str, str]
) -> None:
    server = IngestServer(statuses=[200] * 14 + [401])
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    try:
        code = await run(job(git_repo, tmp_path / "ws"), environ=environ)
    finally:
        await server.stop()
    assert server.requests[-1].what == "course"
    assert code == EXIT_FAILED


async def test_a_broken_ingest_configuration_is_a_bad_job(git_repo: Path, tmp_path: Path) -> None:
    code = await run(job(git_repo, tmp_path / "ws"), environ={"FONDATION_INGEST_URL": "http://x"})
    assert code == EXIT_BAD_JOB


def test_a_job_without_repository_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FONDATION_REPOSITORY", raising=False)
    assert main(["--backend", "offline"]) == EXIT_BAD_JOB
    assert "invalid job description" in capsys.readouterr().err


def test_python_dash_m_runs_a_pod_job(git_repo: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FONDATION_REPOSITORY": str(git_repo),
        "FONDATION_BACKEND": "offline",
        "FONDATION_WORKSPACE": str(tmp_path / "ws"),
        "FONDATION_SUB_PATH": "taskq",
        "FONDATION_MAX_CHAPTERS": "4",
        "FONDATION_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("FONDATION_INGEST_URL", None)

    result = subprocess.run(
        [sys.executable, "-m", "fondation_runner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == EXIT_OK, result.stderr
    assert "course: " in result.stdout
    chapters = sorted(
        (tmp_path / "ws" / "output" / ".claude-tutorial-output" / "chapters").iterdir()
    )
    assert len(chapters) == 4
    assert any((tmp_path / "cache").rglob("*.json"))


async def test_nothing_to_analyse_fails_after_reporting_the_step(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "logo.png").write_bytes(b"\x89PNG\0\0")
    git(origin, "init", "--quiet")
    git(origin, "add", "--all")
    git(origin, "commit", "--quiet", "--message", "only a picture")
    server = IngestServer()
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    try:
        code = await run(job(origin, tmp_path / "ws"), environ=environ)
    finally:
        await server.stop()

    assert code == EXIT_FAILED
    states = [(e["stepName"], e["state"]) for e in server.of("events")]
    assert states[2:] == [
        ("abstractions", "started"),
        ("abstractions", "retrying"),
        ("abstractions", "retrying"),
        ("abstractions", "failed"),
    ]
    assert "the list of abstractions is empty" in server.of("events")[-1]["message"]
    assert server.of("course") == []


async def test_a_clone_only_run_clones_and_the_next_one_analyses_that_clone(
    git_repo: Path, tmp_path: Path, environ: dict[str, str]
) -> None:
    """A private repository's pod: the init container clones (with the Git
    credentials), the runner container analyses the clone (without them)."""
    server = IngestServer()
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    workspace = tmp_path / "ws"
    try:
        cloned = await run(job(git_repo, workspace, clone_only=True), environ=environ)
        assert cloned == EXIT_OK
        assert server.of("course") == []
        assert [(e["stepName"], e["state"]) for e in server.of("events")] == [
            ("clone", "cloning"),
            ("clone", "finished"),
        ]
        # The origin is gone: the analysis can only use the init container's clone.
        moved = await asyncio.to_thread(git_repo.rename, tmp_path / "moved")
        analysed = await run(job(git_repo, workspace), environ=environ)
    finally:
        await server.stop()
    assert analysed == EXIT_OK
    [body] = server.of("course")
    assert Course.model_validate(body).commit == git(moved, "rev-parse", "HEAD")
    assert [e["stepName"] for e in server.of("events")].count("clone") == 2


async def test_a_failed_clone_only_run_reports_and_exits_non_zero(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    server = IngestServer()
    await server.start()
    environ["FONDATION_INGEST_URL"] = server.url
    try:
        code = await run(
            job(tmp_path / "missing", tmp_path / "ws", clone_only=True), environ=environ
        )
    finally:
        await server.stop()
    assert code == EXIT_FAILED
    assert server.of("events")[-1]["state"] == "failed"
    assert server.of("course") == []
