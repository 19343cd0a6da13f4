from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from fondation_contracts.course import DocumentKind
from fondation_runner.analysis import analyze
from fondation_runner.backends.offline import OfflineBackend
from fondation_runner.mermaid import check_mermaid
from fondation_runner.pipeline import Pipeline, PipelineSettings
from tests.runner.helpers import EventLog

CITATION = re.compile(r"`(?P<path>[\w./-]+\.\w+):(?P<start>\d+)(?:-(?P<end>\d+))?`")
MERMAID = re.compile(r"```mermaid\n(?P<body>.*?)\n```", re.DOTALL)


async def test_sample_repo_gives_a_complete_course(sample_repo: Path, tmp_path: Path) -> None:
    events = EventLog()
    course = await analyze(
        OfflineBackend(), source_dir=sample_repo, output_base=tmp_path, commit="a" * 40, sink=events
    )

    assert not course.partial
    assert course.errors == []
    out = tmp_path / ".claude-tutorial-output"
    abstractions = yaml.safe_load((out / "step1_abstractions.yaml").read_text())
    names = [a["name"] for a in abstractions]
    assert sorted(names) == sorted(
        [
            "TaskStatus and Task",
            "RetryPolicy",
            "Storage module",
            "TaskQueue",
            "Worker",
            "Cli module",
        ]
    )
    # Chapters in the step-3 order, by file name and by chapterIndex.
    order = [e["index"] for e in yaml.safe_load((out / "step3_order.yaml").read_text())["order"]]
    assert sorted(order) == list(range(len(names)))
    chapter_files = sorted(p.name for p in (out / "chapters").iterdir())
    assert [f.split("_", 1)[0] for f in chapter_files] == [f"{n:02d}" for n in range(1, 7)]
    ordered_titles = [f"Chapter {n}: {names[i]}" for n, i in enumerate(order, start=1)]
    assert [d.title for d in course.chapters] == ordered_titles
    assert [d.chapter_index for d in course.chapters] == list(range(6))
    reviewed = [d for d in course.documents if d.title.startswith("Reviewed: ")]
    assert [d.title for d in reviewed] == [f"Reviewed: {t}" for t in ordered_titles]
    [tutorial] = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    positions = [tutorial.content.index(f"({'../reviewed-chapters/' + f})") for f in chapter_files]
    assert positions == sorted(positions)
    assert len(events.events) == 12  # started and finished, six times, no retry


async def test_order_puts_what_is_imported_first(sample_repo: Path, tmp_path: Path) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)

    out = tmp_path / ".claude-tutorial-output"
    names = [a["name"] for a in yaml.safe_load((out / "step1_abstractions.yaml").read_text())]
    relationships = yaml.safe_load((out / "step2_relationships.yaml").read_text())["relationships"]
    order = [e["index"] for e in yaml.safe_load((out / "step3_order.yaml").read_text())["order"]]
    position = {index: at for at, index in enumerate(order)}
    for r in relationships:  # from imports to: `to` is taught first
        assert position[r["to_abstraction"]] < position[r["from_abstraction"]], r
    assert names[order[0]] == "TaskStatus and Task"
    assert names[order[-1]] == "Cli module"


async def test_every_citation_and_evidence_points_at_real_code(
    sample_repo: Path, tmp_path: Path
) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)
    out = tmp_path / ".claude-tutorial-output"

    relationships = yaml.safe_load((out / "step2_relationships.yaml").read_text())["relationships"]
    assert relationships
    for r in relationships:
        path, line = r["evidence"].rsplit(":", 1)
        imported = (sample_repo / path).read_text().splitlines()[int(line) - 1]
        assert imported.startswith(("from ", "import ")), r

    cited = 0
    for document in (out / "chapters").glob("*.md"):
        for match in CITATION.finditer(document.read_text()):
            lines = (sample_repo / match["path"]).read_text().splitlines()
            assert 1 <= int(match["start"]) <= int(match["end"] or match["start"]) <= len(lines)
            cited += 1
    assert cited > 20


async def test_definitions_are_cited_at_their_line(sample_repo: Path, tmp_path: Path) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)

    [chapter] = (tmp_path / ".claude-tutorial-output" / "chapters").glob("*_taskqueue.md")
    text = chapter.read_text()
    match = re.search(r"### `class TaskQueue`\n\nDefined at `taskq/queue.py:(\d+)-(\d+)`", text)
    assert match is not None
    source = (sample_repo / "taskq/queue.py").read_text().splitlines()
    assert source[int(match[1]) - 1].startswith("class TaskQueue")
    claim = re.search(r"`claim` \(`taskq/queue.py:(\d+)`\)", text)
    assert claim is not None
    assert source[int(claim[1]) - 1].strip().startswith("def claim(")


async def test_diagrams_parse(sample_repo: Path, tmp_path: Path) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)

    diagrams = [
        m["body"]
        for path in (tmp_path / ".claude-tutorial-output").rglob("*.md")
        for m in MERMAID.finditer(path.read_text())
    ]
    assert len(diagrams) == 6 + 6 + 1
    assert all(check_mermaid(body) == [] for body in diagrams)


async def test_review_checks_citations_and_names_the_prerequisite(
    sample_repo: Path, tmp_path: Path
) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)
    out = tmp_path / ".claude-tutorial-output"
    [first, second] = sorted((out / "reviewed-chapters").iterdir())[:2]

    assert "this is the first chapter" in first.read_text()
    previous = sorted((out / "chapters").iterdir())[0].name
    assert f"]({previous})." in second.read_text()
    checked = second.read_text().split("## Cited code, checked", 1)[1]
    for match in re.finditer(r"- `([\w./-]+):(\d+)(?:-\d+)?` starts with `(.+)`", checked):
        line = (sample_repo / match[1]).read_text().splitlines()[int(match[2]) - 1]
        assert line.strip() == match[3]


async def test_answers_are_deterministic(sample_repo: Path, tmp_path: Path) -> None:
    for run in ("one", "two"):
        await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path / run)
    one = tmp_path / "one" / ".claude-tutorial-output"
    for path in one.rglob("*.*"):
        twin = tmp_path / "two" / ".claude-tutorial-output" / path.relative_to(one)
        assert twin.read_text() == path.read_text()


async def test_max_chapters_groups_modules_by_package(tmp_path: Path) -> None:
    for package in ("api", "core", "db"):
        for module in ("a", "b", "c"):
            path = tmp_path / "src" / package / f"{module}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f'"""{package}.{module}."""\n\n\ndef {module}_{package}() -> None:\n    pass\n'
            )
    (tmp_path / "src" / "api" / "a.py").write_text(
        "from core.b import b_core\n\n\ndef a_api():\n    b_core()\n"
    )

    course = await analyze(
        OfflineBackend(),
        source_dir=tmp_path / "src",
        output_base=tmp_path / "out",
        settings=PipelineSettings(max_chapters=4),
    )

    assert not course.partial
    assert [d.title for d in course.chapters] == [
        "Chapter 1: core package",
        "Chapter 2: api package",
        "Chapter 3: db package",
    ]


async def test_code_without_python_is_split_by_directory(tmp_path: Path) -> None:
    source = tmp_path / "site"
    (source / "assets").mkdir(parents=True)
    (source / "pages").mkdir()
    (source / "assets" / "style.css").write_text("body { margin: 0 }\n")
    (source / "pages" / "index.html").write_text("<h1>Hi</h1>\n<p>Welcome</p>\n")
    (source / "README.md").write_text("# Site\n\nA static web site.\n")

    course = await analyze(OfflineBackend(), source_dir=source, output_base=tmp_path / "out")

    assert not course.partial, course.errors
    titles = sorted(d.title for d in course.chapters)
    assert titles == [
        "Chapter 1: Project root files",
        "Chapter 2: assets/ directory",
        "Chapter 3: pages/ directory",
    ]
    chapter = next(d for d in course.chapters if "pages" in d.title)
    assert "`pages/index.html:1-2`" in chapter.content


async def test_hostile_docstrings_cannot_break_the_answer(tmp_path: Path) -> None:
    """Docstrings are copied into YAML and Markdown: placeholders, links, backticks and
    fences in them must neither fail validation nor change the document's structure."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "evil.py").write_text(
        '"""TODO: {{ fill }} [...] see [x](nowhere.md) and `missing.py:99`\n\n# Heading\n"""\n\n\n'
        'class Evil:\n    """<insert docstring> ```mermaid\nnot a diagram\n```"""\n\n'
        "    def run(self) -> None:\n        pass\n"
    )
    (source / "good.py").write_text("from evil import Evil\n\n\nclass Good(Evil):\n    pass\n")
    events = EventLog()

    course = await analyze(
        OfflineBackend(), source_dir=source, output_base=tmp_path / "out", sink=events
    )

    assert not course.partial, course.errors
    assert [e for e in events.events if e.state.value == "retrying"] == []
    [evil] = [d for d in course.chapters if "Evil" in d.title]
    assert "`TODO`" in evil.content


async def test_pipeline_accepts_every_offline_answer_first_time(
    sample_repo: Path, tmp_path: Path
) -> None:
    """The offline backend and the validator agree: one call per piece of work."""
    backend = OfflineBackend()
    events = EventLog()
    result = await Pipeline(
        backend, source_dir=sample_repo, output_base=tmp_path, sink=events
    ).run()
    assert result.errors == []
    assert not any(e.state.value in ("retrying", "failed") for e in events.events)


async def test_non_utf8_and_unparsable_python_do_not_stop_it(
    tmp_path: Path, sample_repo: Path
) -> None:
    source = tmp_path / "src"
    shutil.copytree(sample_repo, source)
    (source / "taskq" / "broken.py").write_text("def broken(:\n")
    (source / "taskq" / "latin.py").write_bytes(b'"""Caf\xe9."""\n\n\ndef latin():\n    pass\n')

    course = await analyze(OfflineBackend(), source_dir=source, output_base=tmp_path / "out")

    assert not course.partial, course.errors
    assert any("latin" in d.content for d in course.chapters)


async def test_too_many_modules_in_one_package_keeps_the_most_connected(
    sample_repo: Path, tmp_path: Path
) -> None:
    course = await analyze(
        OfflineBackend(),
        source_dir=sample_repo / "taskq",
        output_base=tmp_path,
        settings=PipelineSettings(max_chapters=3),
    )

    assert not course.partial, course.errors
    assert sorted(d.title.split(": ", 1)[1] for d in course.chapters) == [
        "Storage module",
        "TaskQueue",
        "TaskStatus and Task",
    ]
