from __future__ import annotations

import ast
import re
import shutil
import sysconfig
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
    # One chapter per module of the package, `__init__.py` included: 7 of 7.
    assert sorted(names) == sorted(
        [
            "taskq package",
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
    assert [f.split("_", 1)[0] for f in chapter_files] == [f"{n:02d}" for n in range(1, 8)]
    ordered_titles = [f"Chapter {n}: {names[i]}" for n, i in enumerate(order, start=1)]
    assert [d.title for d in course.chapters] == ordered_titles
    assert [d.chapter_index for d in course.chapters] == list(range(7))
    reviewed = [d for d in course.documents if d.title.startswith("Reviewed: ")]
    assert [d.title for d in reviewed] == [f"Reviewed: {t}" for t in ordered_titles]
    # Step 6 as Fondation delivers it: one tutorial per chapter, in order, and an overview.
    tutorials = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert [(d.title, d.chapter_index) for d in tutorials] == [
        (f"Interactive Tutorial: {names[i]}", n) for n, i in enumerate(order)
    ]
    assert [d.source_path for d in tutorials] == [
        f"tutorials/tutorial_{n}_{f.split('_', 1)[1].replace('-', '_')}"
        for n, f in enumerate(chapter_files, start=1)
    ]
    [overview] = [d for d in course.documents if d.kind is DocumentKind.TOC]
    positions = [overview.content.index(f"**{t.title}**") for t in tutorials]
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

    assert_citations_resolve(sample_repo, out, at_least=100)


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
    assert len(diagrams) == 7 + 7 + 1  # chapters, reviews, the overview
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


async def test_max_chapters_merges_the_most_coupled_modules(tmp_path: Path) -> None:
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
    out = tmp_path / "out" / ".claude-tutorial-output"
    groups = [
        a["file_paths"] for a in yaml.safe_load((out / "step1_abstractions.yaml").read_text())
    ]
    assert len(groups) == len(course.chapters) == 4
    # Every module is taught, once; the two that import each other together.
    assert sorted(p for g in groups for p in g) == sorted(
        f"{package}/{module}.py" for package in ("api", "core", "db") for module in "abc"
    )
    assert ["api/a.py", "core/b.py"] in [sorted(g) for g in groups]
    # The other merges keep a package's modules together.
    for group in groups:
        if "api/a.py" not in group:
            assert len({p.split("/")[0] for p in group}) == 1, group


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


async def test_too_many_modules_in_one_package_are_merged_not_dropped(
    sample_repo: Path, tmp_path: Path
) -> None:
    course = await analyze(
        OfflineBackend(),
        source_dir=sample_repo / "taskq",
        output_base=tmp_path,
        settings=PipelineSettings(max_chapters=3),
    )

    assert not course.partial, course.errors
    assert len(course.chapters) == 3
    out = tmp_path / ".claude-tutorial-output"
    groups = [
        a["file_paths"] for a in yaml.safe_load((out / "step1_abstractions.yaml").read_text())
    ]
    assert sorted(p for g in groups for p in g) == sorted(
        p.name for p in (sample_repo / "taskq").glob("*.py")
    )
    assert_citations_resolve(sample_repo / "taskq", out, at_least=50)


async def test_chapters_show_how_a_unit_is_used_and_tutorials_practise_it(
    sample_repo: Path, tmp_path: Path
) -> None:
    await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)
    out = tmp_path / ".claude-tutorial-output"

    [chapter] = (out / "chapters").glob("*_taskqueue.md")
    used = chapter.read_text().split("## How it is used", 1)[1].split("\n## ", 1)[0]
    sites = re.findall(r"- `([\w./-]+):(\d+)` uses `TaskQueue`: `(.+)`", used)
    assert {path for path, _, _ in sites} == {"taskq/cli.py", "taskq/worker.py"}
    for path, line, quoted in sites:
        assert (sample_repo / path).read_text().splitlines()[int(line) - 1].strip() == quoted
        assert "TaskQueue" in quoted

    tutorial = (out / "tutorials" / "tutorial_4_taskqueue.md").read_text()
    assert tutorial.startswith("# Interactive Tutorial: TaskQueue\n")
    for section in ("## Your task", "## Scaffold", "## Step by step", "## How to check it"):
        assert section in tutorial
    [scaffold] = re.findall(r"```python\n(.*?)\n```", tutorial, re.DOTALL)
    assert scaffold.startswith("from taskq.queue import TaskQueue\n")
    ast.parse(scaffold)  # a scaffold the reader can run as it is
    assert "`taskq/queue.py:14-57`" in tutorial  # the definition, at its real lines
    assert "`taskq/cli.py:29`" in tutorial  # a real call site
    assert "](" not in tutorial  # no link: Fondation's UI resolves none


async def test_the_overview_names_documents_by_title_without_file_links(
    sample_repo: Path, tmp_path: Path
) -> None:
    course = await analyze(OfflineBackend(), source_dir=sample_repo, output_base=tmp_path)

    [overview] = [d for d in course.documents if d.kind is DocumentKind.TOC]
    assert overview.source_path == "tutorials/index.md"
    assert re.search(r"\]\((?!#|https?://)", overview.content) is None
    for document in course.chapters:
        assert f"**{document.title}**" in overview.content
    for document in course.documents:
        if document.kind is DocumentKind.TUTORIAL:
            assert f"**{document.title}**" in overview.content


# A real third-party source tree: the standard library's own packages ----------------

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_tree(root: Path, package: str, tests: str = "") -> Path:
    """A copy of a standard-library package (and of its tests, from `test/`), as a
    repository would hold them."""
    shutil.copytree(STDLIB / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    if tests:
        source = STDLIB / "test" / tests
        assert source.is_dir(), f"this Python has no {source}: its test suite is not installed"
        shutil.copytree(source, root / "test" / tests, ignore=shutil.ignore_patterns("__pycache__"))
        (root / "test" / "__init__.py").write_text("")
    return root


async def test_the_json_package_and_its_tests(tmp_path: Path) -> None:
    source = stdlib_tree(tmp_path / "src", "json", tests="test_json")
    events = EventLog()

    course = await analyze(
        OfflineBackend(), source_dir=source, output_base=tmp_path / "out", sink=events
    )

    assert not course.partial, course.errors
    assert [e for e in events.events if e.state.value == "retrying"] == []
    modules = sorted(p.relative_to(source).as_posix() for p in (source / "json").glob("*.py"))
    assert len(course.chapters) >= min(len(modules), 10) == 5
    out = tmp_path / "out" / ".claude-tutorial-output"
    groups = {
        a["name"]: a["file_paths"]
        for a in yaml.safe_load((out / "step1_abstractions.yaml").read_text())
    }
    # Tests are folded into the chapter of what they test, by name or by import.
    owner = {path: name for name, paths in groups.items() for path in paths}
    assert owner["test/test_json/test_decode.py"] == owner["json/decoder.py"]
    assert owner["test/test_json/test_scanstring.py"] == owner["json/decoder.py"]
    assert owner["test/test_json/test_tool.py"] == owner["json/tool.py"]
    assert owner["test/test_json/test_dump.py"] == owner["json/__init__.py"]
    assert sorted(p for p in owner if p.startswith("json/")) == modules
    [decoder] = [d for d in course.chapters if owner["json/decoder.py"] in d.title]
    assert "## How it is tested" in decoder.content
    assert "`test/test_json/test_decode.py:1-" in decoder.content
    assert_citations_resolve(source, out, at_least=200)


async def test_the_email_package_is_grouped_by_imports(tmp_path: Path) -> None:
    source = stdlib_tree(tmp_path / "src", "email")

    course = await analyze(OfflineBackend(), source_dir=source, output_base=tmp_path / "out")

    out = tmp_path / "out" / ".claude-tutorial-output"
    listed = yaml.safe_load((out / "step1_abstractions.yaml").read_text())
    assert len(course.chapters) == len(listed) == 10  # the default maxChapters
    # Every module the listing shows is taught (one is over the size limit: reported).
    shown = {
        p.relative_to(source).as_posix()
        for p in source.rglob("*.py")
        if p.stat().st_size <= 100_000 and p.read_text().strip()
    }
    assert sorted(p for a in listed for p in a["file_paths"]) == sorted(shown)
    assert [e.path for e in course.errors] == ["email/_header_value_parser.py"]
    assert_citations_resolve(source, out, at_least=400)
    tutorials = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert len(tutorials) == 10
    for tutorial in tutorials:
        for scaffold in re.findall(r"```python\n(.*?)\n```", tutorial.content, re.DOTALL):
            ast.parse(scaffold)


async def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    source = stdlib_tree(tmp_path / "src", "email")
    for run in ("one", "two"):
        await analyze(OfflineBackend(), source_dir=source, output_base=tmp_path / run)
    one = tmp_path / "one" / ".claude-tutorial-output"
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 3 + 10 + 10 + 10 + 1
    for path in files:
        assert (tmp_path / "two" / ".claude-tutorial-output" / path).read_bytes() == (
            one / path
        ).read_bytes()


def assert_citations_resolve(source: Path, out: Path, *, at_least: int) -> None:
    """Every `path:line` of every Markdown document, and every relationship's evidence,
    exists in `source`."""
    cited = 0
    for document in out.rglob("*.md"):
        for match in CITATION.finditer(document.read_text()):
            lines = (source / match["path"]).read_text(errors="replace").splitlines()
            start, end = int(match["start"]), int(match["end"] or match["start"])
            assert 1 <= start <= end <= len(lines), (document.name, match.group())
            cited += 1
    for r in yaml.safe_load((out / "step2_relationships.yaml").read_text())["relationships"]:
        path, line = r["evidence"].rsplit(":", 1)
        assert 1 <= int(line) <= len((source / path).read_text().splitlines()), r
    assert cited >= at_least, cited


async def test_hostile_file_names_still_give_runnable_scaffolds(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "tools").mkdir(parents=True)
    (source / "tools" / "my-script.py").write_text(
        '"""A script named the way scripts are."""\n\n\ndef run(path, *, dry=False):\n    pass\n'
    )
    (source / "tools" / "2fast.py").write_text("class Fast:\n    def go(self):\n        pass\n")

    course = await analyze(OfflineBackend(), source_dir=source, output_base=tmp_path / "out")

    assert not course.partial, course.errors
    tutorials = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert len(tutorials) == 2
    for tutorial in tutorials:
        [scaffold] = re.findall(r"```python\n(.*?)\n```", tutorial.content, re.DOTALL)
        ast.parse(scaffold)
        assert "importlib.import_module(" in scaffold
