from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fondation_cli.main import TerminalProgress, main
from fondation_contracts.course import Course
from fondation_contracts.ingest import StepState
from fondation_runner.progress import make_event
from tests.runner.helpers import SAMPLE_REPO, git, make_git_repo

FONDATION = Path(sys.executable).parent / "fondation"
LAYOUT = [
    "chapters",
    "reviewed-chapters",
    "step1_abstractions.yaml",
    "step2_relationships.yaml",
    "step3_order.yaml",
    "tutorials",
]


def test_analyze_then_course_parse_with_the_console_script(tmp_path: Path) -> None:
    started = time.monotonic()
    analyze = subprocess.run(
        [
            str(FONDATION),
            "analyze",
            str(SAMPLE_REPO),
            "--backend",
            "offline",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert analyze.returncode == 0, analyze.stderr
    out = tmp_path / ".claude-tutorial-output"
    assert sorted(p.name for p in out.iterdir()) == LAYOUT
    assert len(list((out / "chapters").glob("*.md"))) == 7
    lines = analyze.stdout.splitlines()
    assert lines[0] == "[1/6 abstractions] started: 8 source files"  # plain lines: not a TTY
    assert "course: 25 documents (7 chapters), 0 problems reported; 0 LLM calls" in lines
    assert elapsed < 30

    parse = subprocess.run(
        [str(FONDATION), "course", "parse", str(tmp_path), "--commit", "a" * 40],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert parse.returncode == 0, parse.stderr
    course = Course.model_validate_json(parse.stdout)
    assert course.commit == "a" * 40
    assert len(course.documents) == 25
    assert [d.chapter_index for d in course.chapters] == list(range(7))
    assert not course.partial


def test_analyze_a_git_url_at_a_ref(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    origin = make_git_repo(tmp_path / "origin")
    git(origin, "checkout", "--quiet", "-b", "feature")
    (origin / "taskq" / "metrics.py").write_text(
        '"""Counters of what the queue did."""\n\n\nclass Metrics:\n    """Counts tasks."""\n'
    )
    git(origin, "add", "--all")
    git(origin, "commit", "--quiet", "--message", "metrics")
    git(origin, "checkout", "--quiet", "main")

    code = main(
        [
            "analyze",
            origin.as_uri(),
            "--ref",
            "feature",
            "--backend",
            "offline",
            "--out",
            str(tmp_path / "out"),
            "--max-chapters",
            "7",
            "--parallelism",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )

    assert code == 0
    chapters = sorted(p.name for p in (tmp_path / "out/.claude-tutorial-output/chapters").iterdir())
    assert "metrics" in " ".join(chapters)
    assert any((tmp_path / "cache").rglob("*.json"))
    assert "written to" in capsys.readouterr().out


def test_analyze_reports_a_clone_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = make_git_repo(tmp_path / "origin")

    code = main(
        ["analyze", str(origin), "--ref", "nope", "--backend", "offline", "--out", str(tmp_path)]
    )

    assert code == 1
    assert "fondation analyze: cannot fetch 'nope'" in capsys.readouterr().err


def test_claude_without_credentials_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    code = main(["analyze", str(SAMPLE_REPO), "--out", str(tmp_path)])

    assert code == 1
    assert "no Claude credentials" in capsys.readouterr().err
    assert not (tmp_path / ".claude-tutorial-output").exists()


def test_course_parse_of_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["course", "parse", str(tmp_path / "missing")]) == 1
    course = Course.model_validate_json(capsys.readouterr().out)
    assert course.partial
    assert course.errors[0].message == "no output directory here"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_on_a_terminal_each_step_is_one_line_rewritten_in_place() -> None:
    terminal = FakeTerminal()
    progress = TerminalProgress(terminal)

    await progress(make_event("chapters", StepState.STARTED, "3 chapters"))
    await progress(make_event("chapters", StepState.RETRYING, "chapter 2: bad citation"))
    assert "\n" not in terminal.getvalue()
    await progress(make_event("chapters", StepState.FINISHED, "3 of 3 chapters"))
    await progress(make_event("review", StepState.STARTED))

    screen = terminal.getvalue()
    assert screen.count("\n") == 1
    finished_line, current = screen.split("\n")
    assert finished_line.rsplit("\r\x1b[2K", 1)[1].startswith("[4/6 chapters] finished in ")
    assert current == "\r\x1b[2K[5/6 review] started"


def test_the_command_starts_without_importing_the_runner() -> None:
    probe = (
        "import sys\n"
        "from fondation_cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('fondation_runner', 'aiohttp', 'yaml')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
