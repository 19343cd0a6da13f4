"""The six-step pipeline end to end through the `claude` backend: the real
claude-agent-sdk and the real bundled Claude Code CLI, against the local fake
Anthropic API, on a git clone of the sample project.

The fake tells the steps apart by a phrase of each step's prompt template and
computes its answers from the prompt it receives (the chapter being written,
the list of chapters, the feedback of a refused attempt), the way a model
would. Two pipeline runs are shared by the tests:

- a good run: every step first reads the clone with Read/Glob/Grep through
  `tool_use`, then answers well; the course is complete, step 6 included (a
  hands-on tutorial per chapter and the overview page, as Fondation delivers
  them). It is then run again on the same commit with the step cache, which
  must not reach the model.
- a bad run, where each kind of bad answer appears once: malformed YAML
  (abstractions, fixed on retry), an unknown id (relationships, never fixed),
  a missing id (order, fixed), a leftover placeholder (chapter 1, fixed), a
  cited file that does not exist (chapter 2, never fixed) and an invalid
  Mermaid diagram (review, fixed). Every refusal must come back to the model
  in the next attempt's prompt, and the steps never fixed must leave a
  partial course that names them.

Each CLI run costs about half a second, so the runs are few: 10 for the good
run, 14 for the bad one, none for the re-run.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import fondation_prompts
from fondation_contracts.course import Course, DocumentKind
from fondation_contracts.ingest import STEP_NAMES
from fondation_runner import layout
from fondation_runner.analysis import analyze
from fondation_runner.backends.claude import READ_ONLY_TOOLS, ClaudeBackend, ClaudeCredentials
from fondation_runner.cache import StepCache
from fondation_runner.pipeline import PipelineSettings
from tests.fakes.anthropic_api import (
    RecordedRequest,
    Script,
    TextTurn,
    ToolCall,
    ToolUseTurn,
    call,
    text,
    tool_use,
)
from tests.fakes.claude_env import OfflineClaude
from tests.runner.helpers import CountingBackend, EventLog, git, make_git_repo

MODEL = "claude-sonnet-4-5"
# List prices the CLI applies to this model (USD per token).
PRICE_IN, PRICE_OUT = 3e-6, 15e-6
MAX_ATTEMPTS = 2

MARKERS: dict[str, str] = {
    "abstractions": "Identify the core abstractions of the project",
    "relationships": "List how the abstractions relate to each other",
    "order": "Choose the order in which the course presents the abstractions",
    "chapters": "## This chapter: ",
    "review": "## The chapter as written",
    "tutorial": "## The chapter it practises",
    "overview": "The course, in reading order: each chapter, then the hands-on tutorial",
}
"""A phrase found in one step's prompt template and in no other (step 6 has two:
a chapter's tutorial and the overview page)."""
SCRIPTS: tuple[str, ...] = tuple(MARKERS)

REJECTED = "## Your previous answer was rejected"
_ATTEMPT = re.compile(r"Attempt (?P<n>\d+) was checked and refused")

# The course: two abstractions, taught in the opposite order of their ids, so
# that the chapters can only follow step 3 by reading it.
ABSTRACTIONS = [
    {
        "name": "Task Queue",
        "description": "The queue hands pending tasks to workers and records their outcome.",
        "file_paths": ["taskq/queue.py", "taskq/storage.py"],
    },
    {
        "name": "Worker",
        "description": "A worker claims one task at a time and runs its handler.",
        "file_paths": ["taskq/worker.py"],
    },
]
ORDER = [1, 0]
CITATIONS = {"Task Queue": "taskq/queue.py:33-43", "Worker": "taskq/worker.py:25-40"}
MISSING_FILE = "taskq/scheduler.py"
CLASS_OF = {"Task Queue": "class TaskQueue", "Worker": "class Worker"}


# -- answers, computed from the prompt -------------------------------------------


def attempt_of(prompt: str) -> int:
    """1 for a first prompt; n + 1 when the feedback of attempt n is appended."""
    match = _ATTEMPT.search(prompt)
    return int(match.group("n")) + 1 if match else 1


def abstractions_answer() -> str:
    return yaml.safe_dump(ABSTRACTIONS, sort_keys=False)


def relationships_answer(to: int = 0) -> str:
    return yaml.safe_dump(
        {
            "summary": "taskq is a small in-process task queue with retries.",
            "relationships": [
                {
                    "from_abstraction": 1,
                    "to_abstraction": to,
                    "label": "claims tasks from",
                    "evidence": "taskq/worker.py:27",
                }
            ],
        },
        sort_keys=False,
    )


def order_answer(ids: list[int]) -> str:
    names = [str(a["name"]) for a in ABSTRACTIONS]
    return yaml.safe_dump(
        {
            "order": [
                {"index": i, "name": names[i], "reasoning": f"{names[i]} comes at this point."}
                for i in ids
            ]
        },
        sort_keys=False,
    )


def chapter_list(prompt: str) -> list[tuple[int, str, str]]:
    """The `N. Name: `NN_slug.md`` lines of a chapter or review prompt."""
    pattern = re.compile(r"^(\d+)\. (.+?): `(\d\d_[\w-]+\.md)`$", re.MULTILINE)
    return [(int(n), name, file) for n, name, file in pattern.findall(prompt)]


def chapter_text(
    number: int, name: str, chapters: list[tuple[int, str, str]], *, citation: str = ""
) -> str:
    others = " ".join(f"[{other}]({file})" for n, other, file in chapters if n != number)
    return (
        f"# Chapter {number}: {name}\n\n"
        f"{name} is implemented around `{citation or CITATIONS[name]}`.\n\n"
        "```mermaid\n"
        "flowchart LR\n"
        '  W["Worker"] -->|claims tasks from| Q["Task Queue"]\n'
        "```\n\n"
        f"See also: {others}.\n"
    )


def chapter_subject(prompt: str) -> tuple[int, str]:
    number = re.search(r"You are writing chapter (\d+) of", prompt)
    name = re.search(r"^## This chapter: (.+)$", prompt, re.MULTILINE)
    assert number and name, "not a chapter prompt"
    return int(number.group(1)), name.group(1)


def review_subject(prompt: str) -> tuple[int, str]:
    number = re.search(r"You are reviewing chapter (\d+) of", prompt)
    name = re.search(r"The chapter is about \*\*(.+?)\*\*", prompt)
    assert number and name, "not a review prompt"
    return int(number.group(1)), name.group(1)


def reviewed_text(prompt: str) -> str:
    number, name = review_subject(prompt)
    return chapter_text(number, name, chapter_list(prompt)) + "\nChecked against the code.\n"


def tutorial_subject(prompt: str) -> tuple[int, str, str]:
    """(chapter number, abstraction name, required heading) of a tutorial prompt."""
    number = re.search(r"goes with chapter (\d+) of", prompt)
    name = re.search(r"^## This tutorial: (.+)$", prompt, re.MULTILINE)
    heading = re.search(r"Start with exactly this heading: `# (.+)`\.", prompt)
    assert number and name and heading, "not a tutorial prompt"
    return int(number.group(1)), name.group(1), heading.group(1)


def tutorial_answer(prompt: str) -> str:
    number, name, heading = tutorial_subject(prompt)
    return (
        f"# {heading}\n\n"
        f"Practise **Chapter {number}: {name}**. Start at `{CITATIONS[name]}`.\n\n"
        "```python\n"
        "from taskq.queue import TaskQueue  # complete the scaffold\n"
        "```\n\n"
        "Check it with `python -m pytest`.\n"
    )


def overview_entries(prompt: str) -> list[tuple[int, str, str]]:
    """The `N. <chapter title>; its tutorial: <tutorial title>` lines of a step-6 prompt."""
    pattern = re.compile(r"^(\d+)\. (.+?); its tutorial: (.+)$", re.MULTILINE)
    return [(int(n), chapter, tutorial) for n, chapter, tutorial in pattern.findall(prompt)]


def overview_answer(prompt: str) -> str:
    path = "".join(
        f"{n}. **{chapter}**, then **{tutorial}**.\n"
        for n, chapter, tutorial in overview_entries(prompt)
    )
    return (
        "# Learning taskq\n\n"
        "taskq queues named tasks and retries the ones that fail; see `taskq/queue.py:14`.\n\n"
        "```mermaid\n"
        "flowchart LR\n"
        '  A0["Task Queue"]\n'
        '  A1["Worker"] -->|claims tasks from| A0\n'
        "```\n\n"
        f"{path}"
    )


# Bad answers, one kind each.
MALFORMED_YAML = "- name: [Task Queue\n  description: unclosed\n"
PLACEHOLDER = "TODO: explain the retries."
INVALID_MERMAID = "flowchart LR\n  W[claims (one at a time)] --> Q"

Answerer = Callable[[str], str]
"""The final answer to a step, given its prompt (with any feedback)."""
Tools = Callable[[str], list[ToolCall]]
"""The tool calls made before answering, given the prompt."""


def good_answers() -> dict[str, Answerer]:
    return {
        "abstractions": lambda _prompt: abstractions_answer(),
        "relationships": lambda _prompt: relationships_answer(),
        "order": lambda _prompt: order_answer(ORDER),
        "chapters": lambda p: chapter_text(*chapter_subject(p), chapter_list(p)),
        "review": reviewed_text,
        "tutorial": tutorial_answer,
        "overview": overview_answer,
    }


def bad_answers() -> dict[str, Answerer]:
    good = good_answers()

    def abstractions(prompt: str) -> str:
        return MALFORMED_YAML if attempt_of(prompt) == 1 else good["abstractions"](prompt)

    def order(prompt: str) -> str:
        return order_answer(ORDER[:1]) if attempt_of(prompt) == 1 else good["order"](prompt)

    def chapters(prompt: str) -> str:
        number, name = chapter_subject(prompt)
        if name == "Task Queue":  # never fixed
            return chapter_text(number, name, chapter_list(prompt), citation=f"{MISSING_FILE}:12")
        answer = good["chapters"](prompt)
        return answer + f"\n{PLACEHOLDER}\n" if attempt_of(prompt) == 1 else answer

    def review(prompt: str) -> str:
        answer = reviewed_text(prompt)
        if attempt_of(prompt) == 1:
            answer = answer.replace(
                'flowchart LR\n  W["Worker"] -->|claims tasks from| Q["Task Queue"]',
                INVALID_MERMAID,
            )
        return answer

    return {
        **good,
        "abstractions": abstractions,
        "relationships": lambda _prompt: relationships_answer(to=5),  # never fixed
        "order": order,
        "chapters": chapters,
        "review": review,
    }


def files_of(prompt: str) -> list[str]:
    """The files a chapter or review prompt lists under its abstraction."""
    return re.findall(r"^- `(taskq/[\w./-]+)`$", prompt, re.MULTILINE)


def reading_tools(clone: Path) -> dict[str, Tools]:
    """What the model looks at in the clone before answering each step."""
    return {
        "abstractions": lambda _prompt: [
            call("Glob", pattern="**/*.py", path=str(clone)),
            call("Grep", pattern="^class ", path=str(clone)),
            call("Read", file_path=str(clone / "taskq" / "queue.py")),
        ],
        "relationships": lambda _prompt: [call("Grep", pattern=r"queue\.claim", path=str(clone))],
        "order": lambda _prompt: [call("Read", file_path=str(clone / "README.md"))],
        "chapters": lambda p: [call("Read", file_path=str(clone / files_of(p)[0]))],
        "review": lambda p: [call("Read", file_path=str(clone / files_of(p)[0]))],
        "tutorial": lambda p: [call("Read", file_path=str(clone / files_of(p)[0]))],
        "overview": lambda _prompt: [call("Glob", pattern="**/*.md", path=str(clone))],
    }


def step_scripts(answers: dict[str, Answerer], tools: dict[str, Tools] | None) -> list[Script]:
    """One script per step: tool calls first (when given), then the answer."""

    def script(step: str) -> Script:
        def respond(request: RecordedRequest, turn: int) -> TextTurn | ToolUseTurn:
            prompt = request.first_user_text
            if tools is not None and turn == 0:
                return tool_use(*tools[step](prompt))
            return text(answers[step](prompt))

        return Script(name=step, marker=MARKERS[step], responder=respond)

    return [script(step) for step in SCRIPTS]


# -- the runs ----------------------------------------------------------------------


@dataclass
class PipelineRun:
    course: Course
    requests: list[RecordedRequest]
    proxy_attempts: list[str]
    events: EventLog
    clone: Path
    output: Path

    def conversation(self, script: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.kind == "conversation" and (script is None or r.script == script)
        ]

    def step_conversation(self, step: str) -> list[RecordedRequest]:
        """A step's requests: step 6 is its tutorials and the overview."""
        scripts = (step, "overview") if step == "tutorial" else (step,)
        return [r for script in scripts for r in self.conversation(script)]

    def first_prompts(self, step: str) -> list[str]:
        """The prompt of each attempt (each CLI session) of a step, in order."""
        return [r.first_user_text for r in self.conversation(step) if r.turn == 0]

    def output_files(self) -> list[str]:
        out = layout.output_dir(self.output)
        return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


@dataclass
class GoodRuns:
    first: PipelineRun
    rerun: Course
    rerun_backend_calls: int
    rerun_requests: int


def backend_for(world: OfflineClaude) -> ClaudeBackend:
    return ClaudeBackend(
        credentials=ClaudeCredentials.api_key(f"sk-ant-api03-{secrets.token_urlsafe(24)}"),
        home=world.home,
        model=MODEL,
        env=world.env,
        max_turns=5,
        timeout_seconds=60.0,
    )


def sample_clone(root: Path) -> tuple[Path, str]:
    clone = make_git_repo(root / "clone")
    return clone, git(clone, "rev-parse", "HEAD")


async def run_pipeline(
    backend: object,
    clone: Path,
    commit: str,
    output: Path,
    *,
    cache: StepCache | None = None,
) -> tuple[Course, EventLog]:
    events = EventLog()
    course = await analyze(
        backend,  # type: ignore[arg-type]
        source_dir=clone,
        output_base=output,
        commit=commit,
        project_name="taskq",
        analysis="sample",
        settings=PipelineSettings(model=MODEL, max_chapters=2, max_attempts=MAX_ATTEMPTS),
        cache=cache,
        sink=events,
    )
    return course, events


@pytest.fixture(scope="module")
async def good(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GoodRuns]:
    root = tmp_path_factory.mktemp("good")
    clone, commit = sample_clone(root)
    cache = StepCache(root / "cache")
    async with OfflineClaude(step_scripts(good_answers(), reading_tools(clone))) as world:
        backend = backend_for(world)
        course, events = await run_pipeline(backend, clone, commit, root / "out", cache=cache)
        first = PipelineRun(
            course=course,
            requests=list(world.api.requests),
            proxy_attempts=list(world.proxy.attempts),
            events=events,
            clone=clone,
            output=root / "out",
        )
        counting = CountingBackend(backend)
        rerun, _ = await run_pipeline(counting, clone, commit, root / "again", cache=cache)
        yield GoodRuns(
            first=first,
            rerun=rerun,
            rerun_backend_calls=counting.calls,
            rerun_requests=len(world.api.requests) - len(first.requests),
        )


@pytest.fixture(scope="module")
async def bad(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PipelineRun]:
    root = tmp_path_factory.mktemp("bad")
    clone, commit = sample_clone(root)
    async with OfflineClaude(step_scripts(bad_answers(), None)) as world:
        course, events = await run_pipeline(backend_for(world), clone, commit, root / "out")
        yield PipelineRun(
            course=course,
            requests=list(world.api.requests),
            proxy_attempts=list(world.proxy.attempts),
            events=events,
            clone=clone,
            output=root / "out",
        )


# -- the scripts find the steps --------------------------------------------------


def test_each_marker_is_in_its_template_only() -> None:
    for step, marker in MARKERS.items():
        holders = [
            name
            for name in fondation_prompts.TEMPLATE_NAMES
            if marker in fondation_prompts.template(name)
        ]
        assert holders == [step], f"{marker!r} is in {holders}"


# -- the good run ------------------------------------------------------------------


async def test_the_course_is_complete_in_step3_order(good: GoodRuns) -> None:
    course = good.first.course
    assert not course.partial
    assert course.errors == []
    assert course.commit == git(good.first.clone, "rev-parse", "HEAD")
    order = yaml.safe_load((layout.output_dir(good.first.output) / "step3_order.yaml").read_text())
    ids = [entry["index"] for entry in order["order"]]
    assert ids == ORDER
    expected = [f"Chapter {n}: {ABSTRACTIONS[i]['name']}" for n, i in enumerate(ids, start=1)]
    chapters = sorted(course.chapters, key=lambda d: d.chapter_index)
    assert [(d.chapter_index, d.title) for d in chapters] == list(enumerate(expected))
    reviewed = sorted(
        (d for d in course.documents if d.title.startswith("Reviewed: ")),
        key=lambda d: d.chapter_index,
    )
    assert [d.title for d in reviewed] == [f"Reviewed: {t}" for t in expected]
    kinds = sorted(d.kind.value for d in course.documents)
    assert kinds == ["chapter"] * 4 + ["toc"] + ["tutorial"] * 2 + ["yaml"] * 3
    tutorials = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert [(d.chapter_index, d.title) for d in tutorials] == [
        (0, "Interactive Tutorial: Worker"),
        (1, "Interactive Tutorial: Task Queue"),
    ]
    # Each tutorial was asked with the reviewed text of its chapter.
    for prompt in good.first.first_prompts("tutorial"):
        number, name, _ = tutorial_subject(prompt)
        assert f"# Chapter {number}: {name}" in prompt
        assert "Checked against the code." in prompt
    (overview,) = [d for d in course.documents if d.kind is DocumentKind.TOC]
    assert overview.title == "Learning taskq"
    assert "1. **Chapter 1: Worker**, then **Interactive Tutorial: Worker**." in overview.content
    assert "](" not in overview.content


async def test_the_output_directory_has_fondations_layout(good: GoodRuns) -> None:
    assert good.first.output_files() == [
        "chapters/01_worker.md",
        "chapters/02_task-queue.md",
        "reviewed-chapters/01_worker.md",
        "reviewed-chapters/02_task-queue.md",
        "step1_abstractions.yaml",
        "step2_relationships.yaml",
        "step3_order.yaml",
        "tutorials/index.md",
        "tutorials/tutorial_1_worker.md",
        "tutorials/tutorial_2_task_queue.md",
    ]
    out = layout.output_dir(good.first.output)
    assert yaml.safe_load((out / "step1_abstractions.yaml").read_text()) == ABSTRACTIONS
    relationships = yaml.safe_load((out / "step2_relationships.yaml").read_text())
    assert relationships["relationships"][0]["evidence"] == "taskq/worker.py:27"


async def test_every_citation_of_the_course_exists_in_the_clone(good: GoodRuns) -> None:
    citation = re.compile(r"`(?P<path>[\w./-]+\.\w+):(?P<start>\d+)(?:-(?P<end>\d+))?`")
    found = 0
    for document in good.first.course.documents:
        if document.kind is DocumentKind.YAML:
            continue
        for match in citation.finditer(document.content):
            lines = (good.first.clone / match["path"]).read_text().splitlines()
            assert 1 <= int(match["start"]) <= int(match["end"] or match["start"]) <= len(lines)
            found += 1
    assert found == 7  # one per chapter, review and tutorial, one in the overview


async def test_every_step_read_the_clone_before_answering(good: GoodRuns) -> None:
    run = good.first
    for step in SCRIPTS:
        sessions = {r.session_id for r in run.conversation(step)}
        expected_sessions = 2 if step in ("chapters", "review", "tutorial") else 1
        assert len(sessions) == expected_sessions, step
        answers = sorted((r.session_id, r.turn, r.answer) for r in run.conversation(step))
        assert [(turn, answer.split(":")[0]) for _, turn, answer in answers] == [
            (0, "tool_use"),
            (1, "text"),
        ] * expected_sessions, step
        for request in run.conversation(step):
            if request.turn == 1:
                results = request.tool_results()
                assert results, f"{step}: no tool result came back"
                assert not [r for r in results if r.is_error], step
    (second,) = [r for r in run.conversation("abstractions") if r.turn == 1]
    glob, grep, read = (r.text for r in second.tool_results())
    assert "taskq/worker.py" in glob
    assert "taskq/models.py" in grep  # files holding `^class `
    assert "class TaskQueue" in read
    for step, subject in (("chapters", chapter_subject), ("review", review_subject)):
        for request in run.conversation(step):
            if request.turn == 1:
                _, name = subject(request.first_user_text)
                (result,) = request.tool_results()
                assert CLASS_OF[name] in result.text, (step, name)


async def test_usage_and_cost_are_recorded_per_step(good: GoodRuns) -> None:
    usage = good.first.course.usage
    assert [s.step for s in usage.steps] == list(STEP_NAMES)
    for step_usage in usage.steps:
        served = [r.usage for r in good.first.step_conversation(step_usage.step)]
        assert all(u is not None for u in served)
        assert step_usage.llm_calls == len(served) > 0
        assert step_usage.input_tokens == sum(u.input_tokens for u in served if u)
        assert step_usage.output_tokens == sum(u.output_tokens for u in served if u)
        assert step_usage.cost_usd == pytest.approx(
            step_usage.input_tokens * PRICE_IN + step_usage.output_tokens * PRICE_OUT, rel=1e-3
        )
        assert not step_usage.cached
    assert usage.llm_calls == len(good.first.conversation()) == 20
    assert usage.cost_usd == pytest.approx(sum(s.cost_usd for s in usage.steps))
    finished = [e for e in good.first.events.events if e.state.value == "finished"]
    assert [e.step_name for e in finished] == list(STEP_NAMES)
    assert [e.usage.llm_calls if e.usage else 0 for e in finished] == [2, 2, 2, 4, 4, 6]


async def test_a_rerun_on_the_same_commit_asks_nothing(good: GoodRuns) -> None:
    assert good.rerun_backend_calls == 0
    assert good.rerun_requests == 0
    assert good.rerun.usage.llm_calls == 0
    assert all(s.cached for s in good.rerun.usage.steps)
    assert [d.sha256 for d in good.rerun.documents] == [
        d.sha256 for d in good.first.course.documents
    ]


# -- the bad run -------------------------------------------------------------------


def retried_with(run: PipelineRun, step: str, problem: str) -> list[str]:
    """The prompts of a step's attempts, checking that the refusal of the first
    one came back in the second."""
    prompts = run.first_prompts(step)
    assert len(prompts) >= 2, f"{step}: no retry"
    first, second = prompts[0], prompts[1]
    assert REJECTED not in first and problem not in first
    assert REJECTED in second and problem in second, f"{step}: {problem!r} not fed back"
    assert "Attempt 1 was checked and refused" in second
    return prompts


async def test_malformed_yaml_is_retried_with_the_parse_error(bad: PipelineRun) -> None:
    prompts = retried_with(bad, "abstractions", "the answer is not valid YAML")
    assert len(prompts) == 2
    assert bad.events.states("abstractions") == ["started", "retrying", "finished"]


async def test_an_unknown_id_is_retried_then_reported(bad: PipelineRun) -> None:
    problem = "relationship 0: to_abstraction 5 is not an abstraction id (ids are 0 to 1)"
    assert len(retried_with(bad, "relationships", problem)) == MAX_ATTEMPTS
    assert bad.events.states("relationships") == ["started", "retrying", "failed"]
    errors = [e for e in bad.course.errors if e.step == "relationships" and not e.path]
    assert len(errors) == 1
    assert errors[0].message.startswith(
        f"relationships: no valid answer after {MAX_ATTEMPTS} attempts"
    )
    assert problem in errors[0].message


async def test_a_missing_id_is_retried_with_the_problem(bad: PipelineRun) -> None:
    problem = "ids [0] are missing; the order must contain every id once"
    assert len(retried_with(bad, "order", problem)) == 2
    order = yaml.safe_load((layout.output_dir(bad.output) / "step3_order.yaml").read_text())
    assert [e["index"] for e in order["order"]] == ORDER


async def test_a_leftover_placeholder_is_retried_with_the_problem(bad: PipelineRun) -> None:
    prompts = [p for p in bad.first_prompts("chapters") if "## This chapter: Worker" in p]
    assert len(prompts) == 2
    assert REJECTED not in prompts[0]
    assert "unfinished marker `TODO` left in" in prompts[1]
    chapter = layout.output_dir(bad.output) / "chapters" / "01_worker.md"
    assert "TODO" not in chapter.read_text()


async def test_a_cited_file_that_does_not_exist_is_retried_then_reported(
    bad: PipelineRun,
) -> None:
    prompts = [p for p in bad.first_prompts("chapters") if "## This chapter: Task Queue" in p]
    assert len(prompts) == MAX_ATTEMPTS
    problem = f"citation `{MISSING_FILE}` is not a file of the repository"
    assert problem not in prompts[0] and problem in prompts[1]
    errors = [e for e in bad.course.errors if e.step == "chapters" and not e.path]
    assert len(errors) == 1
    assert errors[0].message.startswith(
        f"chapter 2 (Task Queue): no valid answer after {MAX_ATTEMPTS} attempts"
    )
    assert problem in errors[0].message


async def test_an_invalid_mermaid_diagram_is_retried_with_the_problem(bad: PipelineRun) -> None:
    problem = "mermaid diagram: line 2: node `W`: label `claims (one at a time)` holds brackets"
    prompts = retried_with(bad, "review", problem)
    assert len(prompts) == 2
    reviewed = layout.output_dir(bad.output) / "reviewed-chapters" / "01_worker.md"
    assert "claims (one at a time)" not in reviewed.read_text()


async def test_answers_never_fixed_leave_a_partial_course(bad: PipelineRun) -> None:
    course = bad.course
    assert course.partial
    failed_steps = {e.step for e in course.errors if "no valid answer" in e.message}
    assert failed_steps == {"relationships", "chapters"}
    # What the model did answer is kept, and only that.
    assert bad.output_files() == [
        "chapters/01_worker.md",
        "reviewed-chapters/01_worker.md",
        "step1_abstractions.yaml",
        "step3_order.yaml",
        "tutorials/index.md",
        "tutorials/tutorial_1_worker.md",
    ]
    assert [(d.chapter_index, d.title) for d in course.chapters] == [(0, "Chapter 1: Worker")]
    (tutorial,) = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert tutorial.title == "Interactive Tutorial: Worker"
    (overview,) = [d for d in course.documents if d.kind is DocumentKind.TOC]
    assert "Interactive Tutorial: Task Queue" not in overview.content
    # The parser names the missing files as well.
    missing = {e.path for e in course.errors if e.path}
    assert "step2_relationships.yaml" in missing
    # Every attempt was paid for and counted, refused or not.
    calls = {s.step: s.llm_calls for s in course.usage.steps}
    assert calls == {step: len(bad.step_conversation(step)) for step in STEP_NAMES}
    assert calls == {
        "abstractions": 2,
        "relationships": 2,
        "order": 2,
        "chapters": 4,
        "review": 2,
        "tutorial": 2,  # the tutorial of the one chapter written, and the overview
    }
    assert all(s.cost_usd > 0 for s in course.usage.steps)


# -- on the wire, both runs ------------------------------------------------------


async def test_only_read_glob_grep_are_offered_and_only_the_fake_is_reached(
    good: GoodRuns, bad: PipelineRun
) -> None:
    for run in (good.first, bad):
        assert run.requests
        # Every request is a step's conversation (the CLI's side requests are off).
        assert {r.kind for r in run.requests} == {"conversation"}
        for request in run.requests:
            assert sorted(request.tools) == sorted(READ_ONLY_TOOLS), request.tools
            assert request.model == MODEL
            assert request.script in SCRIPTS  # no conversation fell to the default
        assert run.proxy_attempts == []
