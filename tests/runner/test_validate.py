from __future__ import annotations

from pathlib import Path

import pytest

from fondation_runner.validate import (
    MarkdownContext,
    SourceTree,
    ValidationFailed,
    parse_yaml,
    validate_abstractions,
    validate_markdown,
    validate_order,
    validate_relationships,
)


@pytest.fixture
def tree(tmp_path: Path) -> SourceTree:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "router.py").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    (tmp_path / "app" / "views.py").write_text("a\nb\nc")  # no final newline: 3 lines
    (tmp_path / "setup.py").write_text("x\n")
    return SourceTree(tmp_path)


def problems_of(call: object) -> list[str]:
    assert callable(call)
    with pytest.raises(ValidationFailed) as refused:
        call()
    return refused.value.problems


ABSTRACTIONS = """\
- name: Router
  description: Picks the view for a request.
  file_paths: [app/router.py]
- name: Views
  description: Render responses.
  file_paths: [app/views.py, app]
"""


# YAML -----------------------------------------------------------------------


def test_yaml_in_a_fence_is_accepted(tree: SourceTree) -> None:
    fenced = f"Here you go:\n```yaml\n{ABSTRACTIONS}```\n"
    assert [a.name for a in validate_abstractions(fenced, tree, max_count=5)] == [
        "Router",
        "Views",
    ]


def test_malformed_yaml_is_refused() -> None:
    problems = problems_of(lambda: parse_yaml("- name: [unclosed\n  description: x"))
    assert problems[0].startswith("the answer is not valid YAML")


def test_missing_keys_and_wrong_types_are_named(tree: SourceTree) -> None:
    problems = problems_of(
        lambda: validate_abstractions("- name: A\n  file_paths: x\n", tree, max_count=5)
    )
    assert any(p.startswith("0.description: Field required") for p in problems)
    assert any(p.startswith("0.file_paths:") for p in problems)


def test_abstractions_must_exist_in_the_clone_and_fit_the_limit(tree: SourceTree) -> None:
    answer = ABSTRACTIONS + "- name: Ghost\n  description: x\n  file_paths: [app/ghost.py]\n"
    problems = problems_of(lambda: validate_abstractions(answer, tree, max_count=2))
    assert "3 abstractions given, at most 2 allowed" in problems
    assert "abstraction 2: `app/ghost.py` is not a file or directory of the repository" in problems


def test_paths_outside_the_clone_do_not_exist(tree: SourceTree, tmp_path: Path) -> None:
    answer = "- name: A\n  description: x\n  file_paths: [../outside.py, /etc/passwd]\n"
    (tmp_path.parent / "outside.py").write_text("x\n")
    problems = problems_of(lambda: validate_abstractions(answer, tree, max_count=5))
    assert len(problems) == 2


def test_duplicate_abstraction_names_are_refused(tree: SourceTree) -> None:
    answer = ABSTRACTIONS + "- name: router\n  description: x\n  file_paths: [setup.py]\n"
    problems = problems_of(lambda: validate_abstractions(answer, tree, max_count=5))
    assert problems == ["abstraction 2: the name `router` is used twice"]


def relationships(evidence: str, source: int = 0, target: int = 1) -> str:
    return (
        "summary: A web app.\nrelationships:\n"
        f"  - from_abstraction: {source}\n    to_abstraction: {target}\n"
        f"    label: dispatches to\n    evidence: {evidence}\n"
    )


def test_valid_relationships(tree: SourceTree) -> None:
    found = validate_relationships(relationships("app/router.py:10"), tree, abstraction_count=2)
    assert found.relationships[0].evidence == "app/router.py:10"


def test_unknown_ids_are_refused(tree: SourceTree) -> None:
    problems = problems_of(
        lambda: validate_relationships(
            relationships("app/router.py:1", 0, 7), tree, abstraction_count=2
        )
    )
    assert problems == [
        "relationship 0: to_abstraction 7 is not an abstraction id (ids are 0 to 1)"
    ]


@pytest.mark.parametrize(
    ("evidence", "problem"),
    [
        ("app/router.py:11", "`app/router.py` has 10 lines, so line 11 does not exist"),
        ("app/views.py:4", "`app/views.py` has 3 lines, so line 4 does not exist"),
        ("app/missing.py:1", "`app/missing.py` is not a file of the repository"),
        ("app/router.py:0", "is not a valid line range"),
        ("app/router.py:5-3", "is not a valid line range"),
        ("the router module", "is not of the form `path:line`"),
    ],
)
def test_evidence_must_cite_an_existing_line(tree: SourceTree, evidence: str, problem: str) -> None:
    problems = problems_of(
        lambda: validate_relationships(relationships(evidence), tree, abstraction_count=2)
    )
    assert len(problems) == 1
    assert problem in problems[0]


def test_evidence_range_and_views_last_line_are_fine(tree: SourceTree) -> None:
    validate_relationships(relationships("app/router.py:2-10"), tree, abstraction_count=2)
    validate_relationships(relationships("app/views.py:3"), tree, abstraction_count=2)


ORDER = "order:\n" + "".join(
    f"  - index: {i}\n    name: N{i}\n    reasoning: because {i}.\n" for i in (2, 0, 1)
)


def test_order_must_be_a_permutation() -> None:
    assert [e.index for e in validate_order(ORDER, abstraction_count=3).order] == [2, 0, 1]

    missing = problems_of(lambda: validate_order(ORDER, abstraction_count=4))
    assert missing == ["ids [3] are missing; the order must contain every id once"]

    repeated = ORDER.replace("index: 1", "index: 2")
    problems = problems_of(lambda: validate_order(repeated, abstraction_count=3))
    assert "ids [2] appear more than once; each must appear exactly once" in problems
    assert "ids [1] are missing; the order must contain every id once" in problems

    unknown = ORDER.replace("index: 1", "index: 9")
    problems = problems_of(lambda: validate_order(unknown, abstraction_count=3))
    assert "unknown abstraction ids [9] (ids are 0 to 2)" in problems


def test_ids_must_be_integers() -> None:
    problems = problems_of(
        lambda: validate_order(ORDER.replace("index: 1", "index: one"), abstraction_count=3)
    )
    assert any(p.startswith("order.2.index:") for p in problems)


@pytest.mark.parametrize(
    "text",
    [
        "Handles {{ROUTE}} for you.",
        "Handles <insert description here>.",
        "Handles requests. [...]",
        "Handles requests. [Add a diagram here]",
        "Handles requests. TODO: finish",
        "Lorem ipsum dolor sit amet.",
    ],
)
def test_placeholders_in_yaml_answers_are_refused(tree: SourceTree, text: str) -> None:
    answer = f'- name: Router\n  description: "{text}"\n  file_paths: [app/router.py]\n'
    problems = problems_of(lambda: validate_abstractions(answer, tree, max_count=5))
    assert "left in" in problems[0]


def test_quoted_placeholder_words_are_not_placeholders(tree: SourceTree) -> None:
    answer = (
        "- name: Router\n  description: Reads `TODO` markers and `{{var}}` templates; see"
        " [the docs](https://example.com).\n  file_paths: [app/router.py]\n"
    )
    validate_abstractions(answer, tree, max_count=5)


# Markdown -------------------------------------------------------------------


def context(tree: SourceTree, path: str = "chapters/01_router.md") -> MarkdownContext:
    return MarkdownContext(
        tree=tree,
        document_path=path,
        known_documents=frozenset(
            {"chapters/01_router.md", "chapters/02_views.md", "tutorials/index.md"}
        ),
    )


CHAPTER = """\
# Chapter 1: Router

The router (`app/router.py:1-10`) picks a view; `setup.py:1` installs it.
It listens on `localhost:8080` and `example.com:443` (not citations).

```python
# TODO: quoted code may say anything, even {{this}}
```

```mermaid
flowchart LR
    R["Router"] -->|"calls"| V["Views"]
```

Next: [Views](02_views.md), or the [index](../tutorials/index.md#top), or [PEP 8](https://peps.python.org/pep-0008/).
"""


def test_a_good_chapter_passes(tree: SourceTree) -> None:
    answer = validate_markdown(CHAPTER, context(tree))
    assert answer.title == "Chapter 1: Router"
    assert answer.text == CHAPTER


def test_a_markdown_fence_around_the_whole_answer_is_removed(tree: SourceTree) -> None:
    answer = validate_markdown(f"```markdown\n{CHAPTER}```\n", context(tree))
    assert answer.text == CHAPTER


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("# Chapter 1: Router\n", "Chapter 1: Router\n"), "no `# ` title heading"),
        (("picks a view", "picks {{a view}}"), "template placeholder `{{a view}}` left in"),
        (("picks a view", "picks <your view here>"), "angle-bracket placeholder"),
        (("picks a view", "picks [...] a view"), "bracketed placeholder `[...]`"),
        (("picks a view", "picks a view (TBD)"), "unfinished marker `TBD`"),
        (('R["Router"]', "R[Router (main)]"), "mermaid diagram: line 2"),
        (("`app/router.py:1-10`", "`app/router.py:1-11`"), "has 10 lines, so line 11"),
        (("`setup.py:1`", "`app/gone.py:1`"), "`app/gone.py` is not a file"),
        (("(02_views.md)", "(03_missing.md)"), "link `03_missing.md` points to no document"),
        (("```python\n# TODO", "```python\n# TODO\n```\n```text\n# TODO"), None),
    ],
)
def test_bad_chapters_are_refused(
    tree: SourceTree, change: tuple[str, str], problem: str | None
) -> None:
    old, new = change
    assert old in CHAPTER
    broken = CHAPTER.replace(old, new, 1)
    if problem is None:  # still balanced: accepted
        validate_markdown(broken, context(tree))
        return
    problems = problems_of(lambda: validate_markdown(broken, context(tree)))
    assert any(problem in p for p in problems), problems


def test_an_unclosed_code_block_is_refused(tree: SourceTree) -> None:
    problems = problems_of(lambda: validate_markdown("# T\n\n```python\nx = 1\n", context(tree)))
    assert problems == ["a code block is opened with ``` and never closed"]


def test_problem_lists_are_capped(tree: SourceTree) -> None:
    text = "# T\n\n" + "".join(f"See `app/none{n}.py:1`.\n" for n in range(30))
    problems = problems_of(lambda: validate_markdown(text, context(tree)))
    assert len(problems) == 21
    assert problems[-1] == "...and 10 more problems"


# Step 6: tutorials and the overview -------------------------------------------------

TUTORIAL = """\
# Interactive Tutorial: Router

Practise **Chapter 1: Router**: read `app/router.py:1-10`, then see [below](#check-it).

```python
from app.router import route  # complete the call
```

## Check it

Run `python -m pytest`; see [pytest](https://docs.pytest.org/).
"""


def tutorial_context(tree: SourceTree) -> MarkdownContext:
    return MarkdownContext(
        tree=tree,
        document_path="tutorials/tutorial_1_router.md",
        known_documents=frozenset({"chapters/01_router.md", "tutorials/index.md"}),
        title="Interactive Tutorial: Router",
        hands_on=True,
        portable_links=True,
    )


def test_a_good_tutorial_passes(tree: SourceTree) -> None:
    answer = validate_markdown(TUTORIAL, tutorial_context(tree))
    assert answer.title == "Interactive Tutorial: Router"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("# Interactive Tutorial: Router", "# Tutorial: the router"),
            "the title heading is `# Tutorial: the router`; "
            "it must be `# Interactive Tutorial: Router`",
        ),
        (
            ("```python\nfrom app.router import route  # complete the call\n```\n", ""),
            "the tutorial gives no scaffold: add a code block to complete",
        ),
        (
            ("read `app/router.py:1-10`", "read the router"),
            "the tutorial cites no code: point at it as `path:line`",
        ),
        (
            ("[below](#check-it)", "[the chapter](../chapters/01_router.md)"),
            "link `../chapters/01_router.md` would not work where the course is read: "
            "name the document by its title instead, or link to a heading (`#...`) or a full URL",
        ),
    ],
)
def test_bad_tutorials_are_refused(tree: SourceTree, change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in TUTORIAL
    problems = problems_of(
        lambda: validate_markdown(TUTORIAL.replace(old, new, 1), tutorial_context(tree))
    )
    assert problems == [problem]


def test_a_mermaid_block_is_no_scaffold_and_a_bad_citation_is_no_citation(
    tree: SourceTree,
) -> None:
    text = '# Interactive Tutorial: Router\n\n```mermaid\nflowchart LR\n    A["a"]\n```\n'
    problems = problems_of(lambda: validate_markdown(text, tutorial_context(tree)))
    assert "the tutorial gives no scaffold: add a code block to complete" in problems
    broken = TUTORIAL.replace("`app/router.py:1-10`", "`app/router.py:1-99`")
    problems = problems_of(lambda: validate_markdown(broken, tutorial_context(tree)))
    assert "the tutorial cites no code: point at it as `path:line`" in problems


def test_relative_links_stay_allowed_in_chapters(tree: SourceTree) -> None:
    """Only documents read in Fondation's UI refuse them; chapters keep theirs."""
    validate_markdown(CHAPTER, context(tree))
    overview = MarkdownContext(tree, "tutorials/index.md", frozenset(), portable_links=True)
    problems = problems_of(lambda: validate_markdown(CHAPTER, overview))
    assert [p.split(" would")[0] for p in problems] == [
        "link `02_views.md`",
        "link `../tutorials/index.md#top`",
    ]
