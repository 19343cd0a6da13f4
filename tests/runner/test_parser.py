from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_runner.parser import parse_output
from tests.runner.helpers import OUTPUTS


def chapters(course: Course) -> list[Document]:
    return [d for d in course.documents if d.slug.startswith("chapter-")]


def reviewed(course: Course) -> list[Document]:
    return [d for d in course.documents if d.slug.startswith("reviewed-")]


def by_slug(course: Course) -> dict[str, Document]:
    return {d.slug: d for d in course.documents}


def messages(course: Course) -> list[str]:
    return [f"{e.path}: {e.message}" for e in course.errors]


def assert_contract(course: Course) -> None:
    """What every parse must guarantee, whatever the input."""
    slugs = [d.slug for d in course.documents]
    assert len(slugs) == len(set(slugs))
    Course.model_validate_json(course.model_dump_json(by_alias=True))  # round-trips
    for document in course.documents:
        assert document == Document.build(
            kind=document.kind,
            slug=document.slug,
            title=document.title,
            content=document.content,
            chapter_index=document.chapter_index,
            source_path=document.source_path,
        )


@pytest.mark.parametrize("case", sorted(p.name for p in OUTPUTS.iterdir()))
def test_every_case_parses_without_raising(case: str) -> None:
    assert_contract(parse_output(OUTPUTS / case))


def test_good_output() -> None:
    course = parse_output(OUTPUTS / "good", analysis="calc", commit="f" * 40, language="fr")

    assert (course.analysis, course.commit, course.language) == ("calc", "f" * 40, "fr")
    assert course.errors == []
    assert not course.partial
    assert [(d.kind, d.slug, d.title, d.chapter_index) for d in course.documents] == [
        (DocumentKind.YAML, "step1_abstractions", "Abstractions", -1),
        (DocumentKind.YAML, "step2_relationships", "Relationships", -1),
        (DocumentKind.YAML, "step3_order", "Chapter Order", -1),
        (DocumentKind.CHAPTER, "chapter-01-parser", "Chapter 1: Parser", 0),
        (DocumentKind.CHAPTER, "chapter-02-evaluator", "Chapter 2: Evaluator", 1),
        (DocumentKind.CHAPTER, "chapter-03-repl", "Chapter 3: Repl", 2),
        (DocumentKind.CHAPTER, "reviewed-01-parser", "Reviewed: Chapter 1: Parser", 0),
        (DocumentKind.CHAPTER, "reviewed-02-evaluator", "Reviewed: Chapter 2: Evaluator", 1),
        (DocumentKind.CHAPTER, "reviewed-03-repl", "Reviewed: Chapter 3: Repl", 2),
        (DocumentKind.TUTORIAL, "tutorial-01-parser", "Interactive Tutorial: Parser", 0),
        (DocumentKind.TUTORIAL, "tutorial-02-evaluator", "Interactive Tutorial: Evaluator", 1),
        (DocumentKind.TUTORIAL, "tutorial-03-repl", "Interactive Tutorial: Repl", 2),
        (DocumentKind.TOC, "overview", "calc: a guided tour", -1),
    ]
    order = json.loads(by_slug(course)["step3_order"].content)
    assert [entry["index"] for entry in order["order"]] == [1, 2, 0]
    assert by_slug(course)["step3_order"].content.startswith('{\n  "order": [')
    chapter = by_slug(course)["chapter-02-evaluator"]
    source = OUTPUTS / "good/.claude-tutorial-output/chapters/02_evaluator.md"
    assert chapter.content == source.read_text()
    assert chapter.source_path == "chapters/02_evaluator.md"
    assert len(course.chapters) == 3


def test_original_fondation_cli_output() -> None:
    course = parse_output(OUTPUTS / "original-cli")

    documents = by_slug(course)
    abstractions = json.loads(documents["step1_abstractions"].content)
    assert abstractions[0]["name"] == "Query Processing\n"  # the raw block scalar is kept
    assert json.loads(documents["step3_order"].content) == [2, 1, 0]
    # `- 2 # Flow`: the order's names come from step 1 (YAML drops the comment).
    assert [(d.slug, d.chapter_index) for d in chapters(course)] == [
        ("chapter-01-flow", 0),
        ("chapter-02-node", 1),
        ("chapter-03-query-processing", 2),
    ]
    assert [(d.slug, d.title) for d in reviewed(course)] == [
        ("reviewed-01-flow", "Reviewed: Chapter 1: Flow"),
        ("reviewed-03-query-processing", "Reviewed: Chapter 3: Query Processing"),
    ]
    # Fondation numbers its tutorials by abstraction id (`tutorial_2_flow.md` is the
    # tutorial of abstraction 2, taught first): matched by name, not by number.
    tutorials = [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]
    assert [(d.slug, d.title, d.chapter_index) for d in tutorials] == [
        ("tutorial-01-flow", "Interactive Tutorial: Flow", 0),
        ("tutorial-03-query-processing", "Interactive Tutorial: Query Processing", 2),
    ]
    assert course.partial  # the review and the tutorial of chapter 2 are missing
    assert messages(course) == [
        "reviewed-chapters/: review of chapter 2 (Node) is missing",
        "tutorials/: tutorial of chapter 2 (Node) is missing",
    ]


def test_chapter_10_comes_after_chapter_2() -> None:
    course = parse_output(OUTPUTS / "chapter-ten")

    assert course.errors == []
    placed = {d.source_path: d.chapter_index for d in chapters(course)}
    assert placed["chapters/chapter_2.md"] == 1
    assert placed["chapters/chapter_10.md"] == 9
    assert [d.source_path for d in chapters(course)] == [
        f"chapters/chapter_{n}.md" for n in range(1, 13)
    ]
    # `"8 # Database"` strings: the chapter at position 3 is named from them.
    assert chapters(course)[2].slug == "chapter-03-database"
    assert [d.chapter_index for d in reviewed(course)] == list(range(12))


def test_missing_directories() -> None:
    course = parse_output(OUTPUTS / "missing-dirs")

    assert course.partial
    assert [d.slug for d in course.documents] == [
        "step1_abstractions",
        "step2_relationships",
        "step3_order",
    ]
    assert messages(course) == [
        "chapters/: missing directory",
        "reviewed-chapters/: missing directory",
        "tutorials/: missing directory",
    ]


def test_unparsable_yaml_is_reported_and_the_rest_still_parses() -> None:
    course = parse_output(OUTPUTS / "bad-yaml")

    assert course.partial
    [error] = course.errors
    assert error.path == "step2_relationships.yaml"
    assert error.step == "relationships"
    assert error.message.startswith("not valid YAML")
    assert "step2_relationships" not in by_slug(course)
    assert [d.slug for d in chapters(course)] == [
        "chapter-01-parser",
        "chapter-02-evaluator",
        "chapter-03-repl",
    ]
    assert (OUTPUTS / "bad-yaml/.claude-tutorial-output/step2_relationships.yaml").is_file()


def test_stray_files_are_reported_not_dropped() -> None:
    course = parse_output(OUTPUTS / "stray-files")

    assert not course.partial  # nothing the course needs is missing
    assert messages(course) == [
        "chapters/appendix.md: matches no entry of the chapter order; published after them",
        "chapters/draft.txt: unexpected file, not part of the course layout (left as is)",
        "debug/run.log: unexpected file, not part of the course layout (left as is)",
        "notes.txt: unexpected file, not part of the course layout (left as is)",
    ]
    appendix = by_slug(course)["chapter-04-appendix"]
    assert (appendix.title, appendix.chapter_index) == ("Appendix: glossary", 3)


def test_a_second_review_of_the_same_chapter_is_reported() -> None:
    course = parse_output(OUTPUTS / "duplicate-reviewed")

    assert [(d.source_path, d.chapter_index) for d in reviewed(course)] == [
        ("reviewed-chapters/01_parser.md", 0),
        ("reviewed-chapters/02_evaluator.md", 1),
        ("reviewed-chapters/03_repl.md", 2),
    ]
    assert messages(course) == [
        "reviewed-chapters/chapter_1.md: a second file for chapter 1 "
        "(the first is reviewed-chapters/01_parser.md); not published, left as is"
    ]
    assert not course.partial


def test_no_output_directory(tmp_path: Path) -> None:
    course = parse_output(tmp_path / "nowhere")
    assert course.partial
    assert course.documents == []
    assert messages(course) == [f"{tmp_path / 'nowhere'}: no output directory here"]


def test_empty_output_directory(tmp_path: Path) -> None:
    course = parse_output(tmp_path)
    assert course.partial
    assert course.documents == []
    assert len(course.errors) == 6  # three YAML files and three directories


def test_the_output_directory_itself_may_be_given() -> None:
    inner = parse_output(OUTPUTS / "good" / ".claude-tutorial-output")
    assert inner == parse_output(OUTPUTS / "good")


def test_without_an_order_chapters_follow_their_numbers(tmp_path: Path) -> None:
    shutil.copytree(OUTPUTS / "chapter-ten", tmp_path, dirs_exist_ok=True)
    (tmp_path / ".claude-tutorial-output" / "step3_order.yaml").unlink()

    course = parse_output(tmp_path)

    assert [d.source_path for d in chapters(course)] == [
        f"chapters/chapter_{n}.md" for n in range(1, 13)
    ]
    assert [d.chapter_index for d in chapters(course)] == list(range(12))
    assert course.partial
    assert "step3_order.yaml: missing" in messages(course)
    assert (
        "step3_order.yaml: no chapter order: chapters are published in the order of their "
        "file numbers" in messages(course)
    )


def test_missing_chapters_empty_files_and_bad_order_entries(tmp_path: Path) -> None:
    shutil.copytree(OUTPUTS / "good", tmp_path, dirs_exist_ok=True)
    out = tmp_path / ".claude-tutorial-output"
    (out / "chapters" / "02_evaluator.md").unlink()
    (out / "reviewed-chapters" / "02_evaluator.md").unlink()
    (out / "chapters" / "03_repl.md").write_text("")
    (out / "tutorials" / "index.md").write_bytes(b"# Caf\xe9\n")
    order = (out / "step3_order.yaml").read_text()
    (out / "step3_order.yaml").write_text(order + "- index: 0\n  name: Repl again\n")

    course = parse_output(tmp_path)

    assert course.partial
    assert messages(course) == [
        "step3_order.yaml: id 0 appears more than once",
        "chapters/03_repl.md: empty file",
        "chapters/: chapter 2 (Evaluator) is missing",
        "tutorials/index.md: not valid UTF-8; undecodable bytes replaced",
    ]
    assert [d.slug for d in chapters(course)] == ["chapter-01-parser"]
    assert by_slug(course)["overview"].title == "Caf\ufffd"
    # The tutorial of the missing chapter is still published, at its place.
    assert by_slug(course)["tutorial-02-evaluator"].chapter_index == 1


def test_tutorials_follow_their_chapter_and_keep_fondations_titles(tmp_path: Path) -> None:
    shutil.copytree(OUTPUTS / "good", tmp_path, dirs_exist_ok=True)
    tutorials = tmp_path / ".claude-tutorial-output" / "tutorials"
    # Renumbered the way Fondation numbers them (by abstraction id: Repl is 0), one
    # with a heading of its own.
    (tutorials / "tutorial_3_repl.md").rename(tutorials / "tutorial_0_repl.md")
    (tutorials / "tutorial_1_parser.md").write_text("# Practising the parser\n\nGo.\n")

    course = parse_output(tmp_path)

    assert course.errors == []
    assert [
        (d.slug, d.title, d.chapter_index, d.source_path)
        for d in course.documents
        if d.kind is DocumentKind.TUTORIAL
    ] == [
        (
            "tutorial-01-parser",
            "Tutorial: Practising the parser",
            0,
            "tutorials/tutorial_1_parser.md",
        ),
        (
            "tutorial-02-evaluator",
            "Interactive Tutorial: Evaluator",
            1,
            "tutorials/tutorial_2_evaluator.md",
        ),
        ("tutorial-03-repl", "Interactive Tutorial: Repl", 2, "tutorials/tutorial_0_repl.md"),
    ]


def test_a_course_with_only_an_index_is_not_missing_tutorials() -> None:
    """A course laid out before per-chapter tutorials: its index is the overview."""
    course = parse_output(OUTPUTS / "duplicate-reviewed")

    assert not course.partial
    assert [d.kind for d in course.documents if d.kind is not DocumentKind.CHAPTER][-1] == (
        DocumentKind.TOC
    )
    assert not [d for d in course.documents if d.kind is DocumentKind.TUTORIAL]


def test_a_chapter_without_its_tutorial_is_reported(tmp_path: Path) -> None:
    shutil.copytree(OUTPUTS / "good", tmp_path, dirs_exist_ok=True)
    (tmp_path / ".claude-tutorial-output" / "tutorials" / "tutorial_2_evaluator.md").unlink()

    course = parse_output(tmp_path)

    assert course.partial
    assert messages(course) == ["tutorials/: tutorial of chapter 2 (Evaluator) is missing"]


# Hostile output directories ---------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _good_copy(tmp_path: Path) -> Path:
    shutil.copytree(OUTPUTS / "good", tmp_path / "out")
    return tmp_path / "out" / ".claude-tutorial-output"


def test_yaml_aliases_are_refused_not_expanded(tmp_path: Path) -> None:
    out = _good_copy(tmp_path)
    (out / "step2_relationships.yaml").write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS.encode()) < 600  # expands to 9**9 strings: gigabytes

    course = parse_output(out)

    assert_contract(course)
    assert "step2_relationships" not in by_slug(course)
    assert any(
        e.path == "step2_relationships.yaml" and "aliases" in e.message for e in course.errors
    )
    assert course.partial
    assert len(chapters(course)) == 3  # the rest still parses


def test_symbolic_links_are_not_followed(tmp_path: Path) -> None:
    out = _good_copy(tmp_path)
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nCLAUDE_CODE_OAUTH_TOKEN=sk-live-1234\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "01_parser.md").write_text("# Parser\n\nsk-live-5678\n")
    (out / "chapters" / "01_parser.md").unlink()
    (out / "chapters" / "01_parser.md").symlink_to(secret)
    (out / "step3_order.yaml").unlink()
    (out / "step3_order.yaml").symlink_to(secret)
    shutil.rmtree(out / "reviewed-chapters")
    (out / "reviewed-chapters").symlink_to(outside, target_is_directory=True)

    course = parse_output(out)

    assert_contract(course)
    dumped = course.model_dump_json()
    assert "sk-live" not in dumped
    reported = messages(course)
    assert "chapters/01_parser.md: a symbolic link: not followed, not published" in reported
    assert "reviewed-chapters: a symbolic link: not followed, not published" in reported
    assert "step3_order.yaml: missing" in reported


def test_oversized_files_are_reported_not_read(tmp_path: Path) -> None:
    out = _good_copy(tmp_path)
    (out / "chapters" / "02_evaluator.md").write_text("# Evaluator\n" + "x" * 2_000_000)

    course = parse_output(out)

    assert_contract(course)
    assert [d.source_path for d in chapters(course)] == [
        "chapters/01_parser.md",
        "chapters/03_repl.md",
    ]
    assert any("02_evaluator.md" in m and "over" in m for m in messages(course))
    assert course.partial


def test_thousands_of_stray_files_give_a_bounded_error_list(tmp_path: Path) -> None:
    out = _good_copy(tmp_path)
    for i in range(1_000):
        (out / f"stray-{i}.txt").write_text("x")

    course = parse_output(out)

    assert_contract(course)
    assert len(course.errors) == 200
    assert course.errors[-1].message == "801 more problems not listed"


def test_hostile_markdown_and_file_names_are_neutralised(tmp_path: Path) -> None:
    out = _good_copy(tmp_path)
    (out / "chapters" / "01_parser.md").write_text(
        "# Parser\x1b[31m\u202e\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(1)> <iframe src=//e></iframe>\n"
        "[x](javascript:alert(1)) ![y](data:text/html,<b>) [z](JAVA&#x0A;SCRIPT:alert(1))\n"
        "NUL\x00here\n\n"
        "```mermaid\n%%{init: {'securityLevel': 'loose'}}%%\ngraph TD\n  A --> B\n"
        '  click A "javascript:alert(1)"\n```\n'
    )
    (out / "chapters" / "04_evil\nname\u202e.md").write_text("# Evil\n\ntext\n")

    course = parse_output(out)

    assert_contract(course)
    parser_doc = by_slug(course)["chapter-01-parser"]
    content = parser_doc.content
    for hostile in ("<script", "<img", "<iframe", "javascript:", "JAVA", "data:", "click", "%%{"):
        assert hostile not in content, hostile
    assert "\x00" not in content and "\x1b" not in content and "\u202e" not in content
    assert parser_doc.title == "Parser"
    assert "graph TD" in content  # the diagram itself is kept
    for document in course.documents:
        assert "\n" not in document.source_path and "\u202e" not in document.source_path
    for error in course.errors:
        assert "\n" not in error.path and "\u202e" not in error.path
