"""From an output directory to a `Course`: a pure function of the files.

It reads the layout the pipeline writes (see `layout`) and the one written
by Fondation's original CLI: YAML block scalars with trailing newlines, an
order given as plain ids (`- 0 # Name`, where YAML drops the comment), as
`"0 # Name"` strings or as `{index, name, reasoning}` maps, chapters
named `chapter_N.md`, and tutorials named `tutorial_<abstraction id>_<name>.md`.

A chapter's `chapterIndex` is its position in the step-3 order, never its
rank among sorted file names (`chapter_10.md` sorts before `chapter_2.md`).
A file is matched to a position by, in turn: its `NN_slug` name, its slug
alone, the abstraction named in its first heading, its number (`chapter_N`,
`NN_`). A file that matches nothing is still published, after the others,
and reported. Tutorials (`tutorials/tutorial_N_name.md`) are matched to
their chapter the same way and carry its `chapterIndex`; once a course has
per-chapter tutorials, a chapter without one is reported (a course laid out
before them, with only an index, is not). `tutorials/index.md` is the
course's overview, a `toc` document.

Nothing is dropped silently and nothing raises: a missing directory, YAML
that does not parse, a missing chapter, a file the layout does not know, a
second file for the same chapter, all become `Course.errors` entries, and
missing content sets `partial`. The files themselves are left as they are.

The directory may be hostile (it was written while a model read an
untrusted repository, or comes from elsewhere): symbolic links are never
followed (nothing outside the directory is read), a file over
MAX_FILE_BYTES is not read, YAML aliases are refused (a few hundred bytes
of them expand to gigabytes), Markdown is neutralised (`safety`), and each
of these is a per-file error.

Slugs (unique within a course, matching the Document pattern):
    step1_abstractions, step2_relationships, step3_order
    chapter-NN-<name>      NN = chapterIndex + 1, <name> from the order
    reviewed-NN-<name>
    tutorial-NN-<name>     the tutorial of chapter NN
    overview               tutorials/index.md

Titles: a tutorial headed `Interactive Tutorial: <name>` (Fondation's own
heading) keeps it, as Fondation's UI lists it; any other heading is
prefixed `Tutorial: `.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fondation_contracts.course import (
    MAX_DOCUMENT_CHARS,
    Course,
    CourseError,
    Document,
    DocumentKind,
    bounded_errors,
)
from fondation_contracts.text import clean, one_line
from fondation_contracts.text import path as printable_path
from fondation_runner import layout
from fondation_runner.safety import load_yaml, neutralise_markdown

YAML_DOCUMENTS: tuple[tuple[str, str, str], ...] = (
    ("abstractions", layout.ABSTRACTIONS_FILE, "Abstractions"),
    ("relationships", layout.RELATIONSHIPS_FILE, "Relationships"),
    ("order", layout.ORDER_FILE, "Chapter Order"),
)
REVIEWED_PREFIX = "Reviewed: "
TUTORIAL_PREFIX = "Tutorial: "
OVERVIEW_SLUG = "overview"
OVERVIEW_TITLE = "Course overview"
"""The overview's title when its page has no heading."""
_TITLE_MAX = 500
MAX_FILE_BYTES = MAX_DOCUMENT_CHARS
"""No document can be larger (the course store's limit), so no file is read past it."""

_NUMBERED = re.compile(r"^(?:tutorial[_-]?)?(?P<number>\d+)(?:[_-](?P<rest>.*))?$", re.IGNORECASE)
_CHAPTER_N = re.compile(r"^chapter[_-]?(?P<number>\d+)(?:[_-](?P<rest>.*))?$", re.IGNORECASE)
_ORDER_STRING = re.compile(r"^\s*(?P<index>\d+)\s*(?:#\s*(?P<name>.*?))?\s*$")
_HEADING = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")

# How a chapter file was matched to a position, strongest first.
_BY_NAME_AND_NUMBER, _BY_NAME, _BY_HEADING, _BY_NUMBER = range(4)


def parse_output(
    path: Path, *, analysis: str = "", commit: str = "", language: str = "en"
) -> Course:
    """The course in `path` (the output directory, or the directory holding it)."""
    course = Course(analysis=analysis, commit=commit, language=language)
    out = layout.resolve_output_dir(path)
    if not out.is_dir():
        course.errors.append(CourseError(path=str(path), message="no output directory here"))
        course.partial = True
        return course
    reader = _Reader(out, course)
    reader.read()
    course.errors = bounded_errors(course.errors)
    return course


@dataclass(frozen=True)
class _Position:
    index: int
    name: str


@dataclass(frozen=True)
class _Placed:
    position: int
    strength: int
    path: str
    title: str
    content: str


class _Reader:
    def __init__(self, out: Path, course: Course) -> None:
        self.out = out
        self.course = course
        self.unclaimed: set[str] = set()
        self.links: set[str] = set()
        for directory, subdirectories, files in os.walk(out):  # never follows links
            base = Path(directory)
            for name in [*files, *subdirectories]:
                path = base / name
                relative = path.relative_to(out).as_posix()
                if path.is_symlink():
                    self.links.add(relative)
                elif name in files:
                    self.unclaimed.add(relative)

    def read(self) -> None:
        parsed = {step: self._yaml(step, name, title) for step, name, title in YAML_DOCUMENTS}
        names = _abstraction_names(parsed["abstractions"])
        positions = self._positions(parsed["order"], names)
        chapters = self._chapters(layout.CHAPTERS_DIR, positions, "chapters")
        self._publish_chapters(chapters, positions, "chapter", "")
        reviewed = self._chapters(layout.REVIEWED_DIR, positions, "review")
        self._publish_chapters(reviewed, positions, "reviewed", REVIEWED_PREFIX)
        tutorials = self._chapters(
            layout.TUTORIALS_DIR, positions, "tutorial", skip=layout.TUTORIAL_INDEX_FILE
        )
        self._publish_chapters(
            tutorials, positions, "tutorial", TUTORIAL_PREFIX, kind=DocumentKind.TUTORIAL
        )
        self._report_gaps(positions, chapters, reviewed, tutorials)
        self._overview()
        for path in sorted(self.unclaimed, key=_natural):
            self._error(path, "", "unexpected file, not part of the course layout (left as is)")
        for path in sorted(self.links, key=_natural):
            self._error(path, "", "a symbolic link: not followed, not published")
        _make_slugs_unique(self.course.documents)

    # YAML steps ------------------------------------------------------------

    def _yaml(self, step: str, name: str, title: str) -> Any:
        path = self.out / name
        self.unclaimed.discard(name)
        if name in self.links or not path.is_file():
            self._missing(name, step, "missing")
            return None
        text = self._text(name, step)
        if text is None:
            return None
        try:
            data = load_yaml(text)
        except yaml.YAMLError as error:
            self._missing(name, step, f"not valid YAML: {' '.join(str(error).split())}")
            return None
        if data is None:
            self._missing(name, step, "empty")
            return None
        self.course.documents.append(
            Document.build(
                kind=DocumentKind.YAML,
                slug=name.removesuffix(".yaml"),
                title=title,
                content=_html_safe_json(data),
                source_path=name,
            )
        )
        return data

    def _positions(self, order: Any, names: list[str]) -> list[_Position]:
        """The step-3 order as (abstraction id, name) per position."""
        if order is None:
            return []
        entries = order.get("order") if isinstance(order, dict) else order
        if not isinstance(entries, list):
            self._error(layout.ORDER_FILE, "order", "no `order` list in it")
            self.course.partial = True
            return []
        positions: list[_Position] = []
        seen: set[int] = set()
        for number, entry in enumerate(entries):
            index, name = _order_entry(entry)
            if index is None:
                self._error(layout.ORDER_FILE, "order", f"entry {number} has no id: {entry!r}")
                continue
            if index in seen:
                self._error(layout.ORDER_FILE, "order", f"id {index} appears more than once")
                continue
            if names and index >= len(names):
                self._error(layout.ORDER_FILE, "order", f"id {index} is not an abstraction")
            seen.add(index)
            name = name or (names[index] if index < len(names) else "")
            positions.append(_Position(index, name))
        return positions

    # Chapters and reviewed chapters ----------------------------------------

    def _chapters(
        self, folder: str, positions: list[_Position], step: str, *, skip: str = ""
    ) -> dict[int, _Placed]:
        """Each Markdown file of `folder` but `skip`, at its position; extras after the
        order's end."""
        files = self._markdown_files(folder, step)
        if files is None:
            return {}
        files = [f for f in files if f != skip]
        zero_based = any(_file_number(f) == 0 for f in files)
        candidates: list[_Placed] = []
        unplaced: list[tuple[str, str, str]] = []
        for file in files:
            relative = f"{folder}/{file}"
            self.unclaimed.discard(relative)
            content = self._text(relative, step)
            if content is None:
                continue
            title = _title(content)
            match = _match(file, title, positions, zero_based)
            if match is None:
                unplaced.append((relative, title, content))
            else:
                position, strength = match
                candidates.append(_Placed(position, strength, relative, title, content))
        placed: dict[int, _Placed] = {}
        for candidate in sorted(candidates, key=lambda c: (c.strength, _natural(c.path))):
            kept = placed.setdefault(candidate.position, candidate)
            if kept is not candidate:
                self._error(
                    candidate.path,
                    step,
                    f"a second file for chapter {candidate.position + 1} "
                    f"(the first is {kept.path}); not published, left as is",
                )
        next_free = max([len(positions) - 1, *placed]) + 1
        for relative, title, content in unplaced:
            if positions:
                self._error(
                    relative, step, "matches no entry of the chapter order; published after them"
                )
            placed[next_free] = _Placed(next_free, _BY_NUMBER, relative, title, content)
            next_free += 1
        return placed

    def _markdown_files(self, folder: str, step: str) -> list[str] | None:
        directory = self.out / folder
        if folder in self.links or not directory.is_dir():
            self._missing(folder + "/", step, "missing directory")
            return None
        files = sorted(
            (
                p.name
                for p in directory.iterdir()
                if p.suffix == ".md" and not p.is_symlink() and p.is_file()
            ),
            key=_natural,
        )
        if not files:
            self._missing(folder + "/", step, "no Markdown file in it")
        return files

    def _publish_chapters(
        self,
        placed: dict[int, _Placed],
        positions: list[_Position],
        slug_prefix: str,
        title_prefix: str,
        kind: DocumentKind = DocumentKind.CHAPTER,
    ) -> None:
        for position in sorted(placed):
            chapter = placed[position]
            if not chapter.content.strip():
                self._missing(chapter.path, "", "empty file")
                continue
            name = positions[position].name if position < len(positions) else ""
            stem = Path(chapter.path).stem
            title = chapter.title or name or stem.replace("_", " ")
            if kind is not DocumentKind.TUTORIAL or not title.startswith(
                layout.TUTORIAL_TITLE_PREFIX  # Fondation's own heading: kept as it is
            ):
                title = title_prefix + title
            label = layout.slugify(name) or layout.slugify(_file_rest(stem))
            self.course.documents.append(
                Document.build(
                    kind=kind,
                    slug=f"{slug_prefix}-{position + 1:02d}" + (f"-{label}" if label else ""),
                    title=one_line(title)[:_TITLE_MAX],
                    content=neutralise_markdown(chapter.content),
                    chapter_index=position,
                    source_path=printable_path(chapter.path),
                )
            )

    def _report_gaps(
        self,
        positions: list[_Position],
        chapters: dict[int, _Placed],
        reviewed: dict[int, _Placed],
        tutorials: dict[int, _Placed],
    ) -> None:
        if not positions and chapters:
            self._error(
                layout.ORDER_FILE,
                "order",
                "no chapter order: chapters are published in the order of their file numbers",
            )
        expected = range(len(positions)) if positions else sorted(chapters)
        for position in expected:
            name = positions[position].name if position < len(positions) else ""
            what = f"chapter {position + 1}" + (f" ({name})" if name else "")
            if position not in chapters and (self.out / layout.CHAPTERS_DIR).is_dir():
                self._missing(layout.CHAPTERS_DIR + "/", "chapters", f"{what} is missing")
            if (
                position not in reviewed
                and position in chapters
                and (self.out / layout.REVIEWED_DIR).is_dir()
            ):
                self._missing(layout.REVIEWED_DIR + "/", "review", f"review of {what} is missing")
            if tutorials and position not in tutorials and position in chapters:
                self._missing(
                    layout.TUTORIALS_DIR + "/", "tutorial", f"tutorial of {what} is missing"
                )

    # Overview ------------------------------------------------------------

    def _overview(self) -> None:
        relative = f"{layout.TUTORIALS_DIR}/{layout.TUTORIAL_INDEX_FILE}"
        path = self.out / relative
        if path.is_symlink() or not path.is_file():
            return  # Fondation's original CLI writes none: not a gap (a link is reported)
        self.unclaimed.discard(relative)
        content = self._text(relative, "tutorial")
        if content is None:
            return
        if not content.strip():
            self._missing(relative, "tutorial", "empty file")
            return
        self.course.documents.append(
            Document.build(
                kind=DocumentKind.TOC,
                slug=OVERVIEW_SLUG,
                title=one_line(_title(content) or OVERVIEW_TITLE)[:_TITLE_MAX],
                content=neutralise_markdown(content),
                source_path=printable_path(relative),
            )
        )

    # Reporting -------------------------------------------------------------

    def _text(self, relative: str, step: str) -> str | None:
        """The file's text, or None (reported) when it is too large to publish."""
        try:
            with (self.out / relative).open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            self._missing(relative, step, f"cannot be read: {error.strerror}")
            return None
        if len(data) > MAX_FILE_BYTES:
            self._missing(relative, step, f"over {MAX_FILE_BYTES} bytes: not published")
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self._error(relative, step, "not valid UTF-8; undecodable bytes replaced")
            return data.decode("utf-8", errors="replace")

    def _missing(self, path: str, step: str, message: str) -> None:
        self.course.partial = True
        self._error(path, step, message)

    def _error(self, path: str, step: str, message: str) -> None:
        self.course.errors.append(
            CourseError(path=printable_path(path), step=step, message=clean(message))
        )


def _html_safe_json(data: Any) -> str:
    """Pretty JSON that no HTML renderer can take for markup: `<`, `>` and `&`
    written as escapes (the same JSON value), controls and bidi overrides removed."""
    text = clean(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _abstraction_names(data: Any) -> list[str]:
    entries = data.get("abstractions") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return []
    return [
        str(entry.get("name", "")).strip() if isinstance(entry, dict) else str(entry).strip()
        for entry in entries
    ]


def _order_entry(entry: Any) -> tuple[int | None, str]:
    """An order entry as (id, name): `3`, `"3 # Name"` or `{index: 3, name: Name}`."""
    if isinstance(entry, bool):
        return None, ""
    if isinstance(entry, int):
        return (entry, "") if entry >= 0 else (None, "")
    if isinstance(entry, str):
        match = _ORDER_STRING.match(entry)
        return (int(match.group("index")), match.group("name") or "") if match else (None, "")
    if isinstance(entry, dict):
        index, _ = _order_entry(entry.get("index"))
        return index, str(entry.get("name") or "").strip()
    return None, ""


def _match(
    file: str, title: str, positions: list[_Position], zero_based: bool
) -> tuple[int, int] | None:
    """(position, strength) of a chapter file, or None."""
    stem = Path(file).stem
    number = _file_number(file)
    rest = layout.slugify(_file_rest(stem))
    slugs = [layout.slugify(p.name) for p in positions]
    if number is not None and rest and 0 < number <= len(positions) and slugs[number - 1] == rest:
        return number - 1, _BY_NAME_AND_NUMBER
    if rest and slugs.count(rest) == 1:
        return slugs.index(rest), _BY_NAME
    heading = title.casefold()
    named = [
        (len(p.name), i) for i, p in enumerate(positions) if p.name and p.name.casefold() in heading
    ]
    if named:
        longest = max(named)
        if [n for n in named if n[0] == longest[0]] == [longest]:
            return longest[1], _BY_HEADING
    if number is not None:
        position = number if zero_based else number - 1
        if not positions or 0 <= position < len(positions):
            return position, _BY_NUMBER
    return None


def _file_number(file: str) -> int | None:
    stem = Path(file).stem
    match = _NUMBERED.match(stem) or _CHAPTER_N.match(stem)
    return int(match.group("number")) if match else None


def _file_rest(stem: str) -> str:
    """`01_request-router` -> `request-router`; `chapter_3` -> ``."""
    match = _NUMBERED.match(stem) or _CHAPTER_N.match(stem)
    if match is None:
        return stem
    return match.group("rest") or ""


def _title(markdown: str) -> str:
    """The text of the first `# ` heading outside code blocks, or ``."""
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            return match.group("title").strip()
    return ""


def _natural(text: str) -> list[Any]:
    """Sort key where `chapter_2` comes before `chapter_10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _make_slugs_unique(documents: list[Document]) -> None:
    seen: set[str] = set()
    for position, document in enumerate(documents):
        slug, suffix = document.slug, 2
        while slug in seen:
            slug, suffix = f"{document.slug}-{suffix}", suffix + 1
        seen.add(slug)
        if slug != document.slug:
            documents[position] = document.model_copy(update={"slug": slug})
