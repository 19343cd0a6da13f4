"""Checking a backend's answer before it becomes part of the course.

Each `validate_*` function turns an answer's text into its model or raises
`ValidationFailed` listing every problem found, worded for the model: the
pipeline feeds that list back into the next prompt. The checks are the ones
a reader would notice: YAML that does not parse, ids that do not exist, an
order that skips or repeats a chapter, placeholders left in, diagrams
Mermaid would refuse, and citations (`path:line`) of code that is not there.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fondation_contracts.text import clean, one_line
from fondation_runner.answers import (
    Abstraction,
    Abstractions,
    ChapterOrder,
    MarkdownAnswer,
    Relationships,
)
from fondation_runner.mermaid import check_mermaid
from fondation_runner.safety import load_yaml, neutralise_markdown

MAX_REPORTED_PROBLEMS = 20

_M = TypeVar("_M", bound=BaseModel)

_YAML_FENCE = re.compile(r"```(?:ya?ml)?[ \t]*\n(?P<body>.*?)\n[ \t]*```", re.DOTALL)
_MARKDOWN_FENCE = re.compile(r"\A```(?:markdown|md)[ \t]*\n(?P<body>.*)\n```\s*\Z", re.DOTALL)
_FENCE_LINE = re.compile(r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")
_INLINE_CODE = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)")
_HEADING = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t#]*$")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CITATION = re.compile(r"^(?P<path>[\w./-]+):(?P<start>\d+)(?:-(?P<end>\d+))?$")
_PORTABLE_LINK = re.compile(r"^(?:#|https?://|mailto:)", re.IGNORECASE)
# fmt: off
_CITED_EXTENSIONS = frozenset({
    "py", "pyi", "js", "jsx", "ts", "tsx", "mjs", "cjs", "go", "rs", "java", "kt", "kts",
    "scala", "rb", "php", "cs", "c", "h", "cc", "cpp", "hpp", "swift", "m", "sh", "bash", "zsh",
    "ps1", "sql", "md", "rst", "txt", "yaml", "yml", "json", "toml", "ini", "cfg", "conf",
    "xml", "html", "css", "scss", "vue", "svelte", "lua", "r", "jl", "ex", "exs", "erl", "hs",
    "ml", "clj", "dart", "tf", "proto", "gradle", "mk", "cmake",
})
# fmt: on
"""Extensions that make `name.ext:12` a citation (see `_looks_like_a_path`)."""

PLACEHOLDER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\{\{[^{}\n]*\}\}"), "template placeholder"),
    (
        re.compile(
            r"<\s*(?:placeholder|insert|your|add|fill|todo|tbd|describe|description|name|path"
            r"|file|chapter|content|summary|title)\b[^<>\n]*>",
            re.IGNORECASE,
        ),
        "angle-bracket placeholder",
    ),
    (
        re.compile(
            r"\[\s*(?:\.\.\.|…|insert\b[^\]\n]*|add\b[^\]\n]*|placeholder\b[^\]\n]*"
            r"|todo\b[^\]\n]*|tbd|your\b[^\]\n]*|fill\b[^\]\n]*|to be (?:written|completed))\s*\]",
            re.IGNORECASE,
        ),
        "bracketed placeholder",
    ),
    (re.compile(r"\b(?:TODO|TBD|FIXME)\b"), "unfinished marker"),
    (re.compile(r"\blorem ipsum\b", re.IGNORECASE), "filler text"),
)
"""Marks of an answer that was not finished. `[...]`-style means a bracketed
ellipsis or instruction (`[...]`, `[Insert diagram here]`, `[TODO: ...]`);
ordinary Markdown links and checkboxes do not match. Only prose is
searched: code blocks and inline code may legitimately quote a `TODO` or a
`{{template}}` from the repository."""


class ValidationFailed(Exception):
    """An answer was refused; `problems` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        if len(problems) > len(shown):
            shown.append(f"...and {len(problems) - len(shown)} more problems")
        self.problems = shown
        super().__init__("; ".join(shown))


@dataclass
class SourceTree:
    """The analysed directory, as citations see it (line counts cached)."""

    root: Path
    _line_counts: dict[str, int | None] = field(default_factory=dict)

    def line_count(self, path: str) -> int | None:
        """Lines in the file at `path`, or None when no such file exists inside root."""
        if path not in self._line_counts:
            self._line_counts[path] = self._count(path)
        return self._line_counts[path]

    def exists(self, path: str) -> bool:
        resolved = self._resolve(path)
        return resolved is not None and (resolved.is_file() or resolved.is_dir())

    def check_citation(self, path: str, start: int, end: int) -> str | None:
        """Why `path:start-end` is not a valid citation, or None when it is."""
        lines = self.line_count(path)
        if lines is None:
            return f"`{path}` is not a file of the repository"
        if start < 1 or end < start:
            return f"`{path}:{start}-{end}` is not a valid line range"
        if end > lines:
            return f"`{path}` has {lines} lines, so line {end} does not exist"
        return None

    def _resolve(self, path: str) -> Path | None:
        normalized = posixpath.normpath(path.removeprefix("./"))
        if normalized.startswith(("/", "..")) or normalized == ".":
            return None
        candidate = self.root / normalized
        if candidate.is_symlink() or not candidate.resolve().is_relative_to(self.root.resolve()):
            return None
        return candidate

    def _count(self, path: str) -> int | None:
        resolved = self._resolve(path)
        if resolved is None or not resolved.is_file():
            return None
        data = resolved.read_bytes()
        return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@dataclass(frozen=True)
class MarkdownContext:
    """What a Markdown answer is checked against."""

    tree: SourceTree
    document_path: str
    """Where the document will live, relative to the output directory."""
    known_documents: frozenset[str]
    """Every document of the course, relative to the output directory; a
    relative `.md` link must point at one of them."""
    title: str = ""
    """When set, the `# ` heading the document must have, exactly."""
    hands_on: bool = False
    """A tutorial: it must give a scaffold (a code block) and cite the code."""
    portable_links: bool = False
    """Read inside Fondation's UI, which resolves no link between documents: only
    links to a heading (`#...`) or to a full URL are allowed."""


# Steps 1-3 ------------------------------------------------------------------


def validate_abstractions(text: str, tree: SourceTree, *, max_count: int) -> list[Abstraction]:
    data = parse_yaml(text)
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # `abstractions: [...]`: tolerated, unwrapped
    abstractions = _model(Abstractions, data).root
    problems: list[str] = []
    if not abstractions:
        problems.append("the list of abstractions is empty")
    if len(abstractions) > max_count:
        problems.append(f"{len(abstractions)} abstractions given, at most {max_count} allowed")
    seen: set[str] = set()
    for index, abstraction in enumerate(abstractions):
        if abstraction.name.casefold() in seen:
            problems.append(f"abstraction {index}: the name `{abstraction.name}` is used twice")
        seen.add(abstraction.name.casefold())
        problems.extend(_placeholders(abstraction.name, f"abstraction {index} name"))
        problems.extend(_placeholders(abstraction.description, f"abstraction {index} description"))
        problems.extend(
            f"abstraction {index}: `{path}` is not a file or directory of the repository"
            for path in abstraction.file_paths
            if not tree.exists(path)
        )
    _raise_if(problems)
    return abstractions


def validate_relationships(text: str, tree: SourceTree, *, abstraction_count: int) -> Relationships:
    relationships = _model(Relationships, parse_yaml(text))
    problems = _placeholders(relationships.summary, "summary")
    for number, relationship in enumerate(relationships.relationships):
        where = f"relationship {number}"
        for key in ("from_abstraction", "to_abstraction"):
            value = getattr(relationship, key)
            if value >= abstraction_count:
                problems.append(
                    f"{where}: {key} {value} is not an abstraction id "
                    f"(ids are 0 to {abstraction_count - 1})"
                )
        problems.extend(_placeholders(relationship.label, f"{where} label"))
        citation = _CITATION.match(relationship.evidence.strip("` "))
        if citation is None:
            problems.append(
                f"{where}: evidence `{relationship.evidence}` is not of the form `path:line`"
            )
        else:
            problem = _citation_problem(tree, citation)
            if problem:
                problems.append(f"{where}: evidence {problem}")
    _raise_if(problems)
    return relationships


def validate_order(text: str, *, abstraction_count: int) -> ChapterOrder:
    order = _model(ChapterOrder, parse_yaml(text))
    problems: list[str] = []
    indices = [entry.index for entry in order.order]
    unknown = sorted({i for i in indices if i >= abstraction_count})
    if unknown:
        problems.append(f"unknown abstraction ids {unknown} (ids are 0 to {abstraction_count - 1})")
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        problems.append(f"ids {repeated} appear more than once; each must appear exactly once")
    missing = sorted(set(range(abstraction_count)) - set(indices))
    if missing:
        problems.append(f"ids {missing} are missing; the order must contain every id once")
    for entry in order.order:
        problems.extend(_placeholders(entry.reasoning, f"reasoning of {entry.index}"))
    _raise_if(problems)
    return order


def parse_yaml(text: str) -> Any:
    """Parse an answer as YAML, tolerating a ```yaml fence around it."""
    fenced = _YAML_FENCE.search(text)
    body = fenced.group("body") if fenced else text
    try:
        return load_yaml(body)
    except yaml.YAMLError as error:
        raise ValidationFailed([f"the answer is not valid YAML: {_one_line(error)}"]) from None


# Steps 4-6 ------------------------------------------------------------------


def validate_markdown(text: str, context: MarkdownContext) -> MarkdownAnswer:
    """Check a chapter, a review, a tutorial or the overview page, and return it
    neutralised (`safety`): raw HTML, unsafe links, Mermaid clicks and
    directives and control characters never reach the course."""
    unwrapped = _MARKDOWN_FENCE.match(text.strip())
    body = clean((unwrapped.group("body") if unwrapped else text).strip()) + "\n"
    prose, code_blocks, unclosed = _split_markdown(body)
    problems: list[str] = []
    if unclosed:
        problems.append("a code block is opened with ``` and never closed")
    title = next((m.group("title") for _, line in prose if (m := _HEADING.match(line))), None)
    if title is None:
        problems.append("the document has no `# ` title heading")
    elif context.title and title != context.title:
        problems.append(f"the title heading is `# {title}`; it must be `# {context.title}`")
    cited = 0
    for line_number, line in prose:
        spans = [m.group("code") for m in _INLINE_CODE.finditer(line)]
        text_only = _INLINE_CODE.sub(" ", line)
        problems.extend(_placeholders(text_only, f"line {line_number}"))
        problems.extend(_citations_problems(context.tree, spans))
        problems.extend(_link_problems(text_only, context))
        cited += sum(1 for span in spans if _is_citation(context.tree, span))
    for info, source in code_blocks:
        if info == "mermaid":
            problems.extend(f"mermaid diagram: {p}" for p in check_mermaid(source))
    if context.hands_on:
        if not [info for info, _ in code_blocks if info != "mermaid"]:
            problems.append("the tutorial gives no scaffold: add a code block to complete")
        if not cited:
            problems.append("the tutorial cites no code: point at it as `path:line`")
    _raise_if(problems)
    assert title is not None
    return MarkdownAnswer(title=one_line(title), text=neutralise_markdown(body))


def _split_markdown(text: str) -> tuple[list[tuple[int, str]], list[tuple[str, str]], bool]:
    """Numbered prose lines, fenced code blocks as (info, source), and whether
    a fence is left open."""
    prose: list[tuple[int, str]] = []
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    info = ""
    block: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE_LINE.match(line)
        if fence is None:
            if match:
                fence, info, block = match.group("fence"), match.group("info").lower(), []
            else:
                prose.append((number, line))
        elif match and match.group("fence").startswith(fence) and not match.group("info"):
            blocks.append((info, "\n".join(block)))
            fence = None
        else:
            block.append(line)
    return prose, blocks, fence is not None


def _citations_problems(tree: SourceTree, spans: list[str]) -> Iterator[str]:
    for span in spans:
        citation = _CITATION.match(span.strip())
        if citation is None or not _looks_like_a_path(tree, citation.group("path")):
            continue
        problem = _citation_problem(tree, citation)
        if problem:
            yield f"citation {problem}"


def _is_citation(tree: SourceTree, span: str) -> bool:
    """A `path:line` span that points at existing code."""
    citation = _CITATION.match(span.strip())
    return (
        citation is not None
        and _looks_like_a_path(tree, citation.group("path"))
        and _citation_problem(tree, citation) is None
    )


def _looks_like_a_path(tree: SourceTree, path: str) -> bool:
    """`a/b.py:3` and `setup.py:3` are citations; `localhost:8080` and `example.com:443` are not."""
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return "/" in path or extension in _CITED_EXTENSIONS or tree.line_count(path) is not None


def _citation_problem(tree: SourceTree, citation: re.Match[str]) -> str | None:
    start = int(citation.group("start"))
    end = int(citation.group("end") or start)
    return tree.check_citation(citation.group("path"), start, end)


def _link_problems(line: str, context: MarkdownContext) -> Iterator[str]:
    for match in _LINK.finditer(line):
        if context.portable_links and not _PORTABLE_LINK.match(match.group("target")):
            yield (
                f"link `{match.group('target')}` would not work where the course is read: "
                "name the document by its title instead, or link to a heading (`#...`) "
                "or a full URL"
            )
            continue
        target = match.group("target").split("#", 1)[0]
        if not target.endswith(".md") or "://" in target or target.startswith("/"):
            continue
        base = posixpath.dirname(context.document_path)
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved not in context.known_documents:
            yield f"link `{target}` points to no document of the course"


# Shared ---------------------------------------------------------------------


def _model(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            location = ".".join(str(part) for part in detail["loc"]) or "the answer"
            problems.append(f"{location}: {detail['msg']}")
        raise ValidationFailed(problems) from None


def _placeholders(text: str, where: str) -> list[str]:
    """Placeholders in prose; inline code (a quoted `TODO`) is not prose."""
    text = _INLINE_CODE.sub(" ", text)
    return [
        f"{where}: {kind} `{match.group()}` left in"
        for pattern, kind in PLACEHOLDER_PATTERNS
        for match in pattern.finditer(text)
    ]


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise ValidationFailed(problems)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
