"""A deterministic, network-free backend that reads the code's own structure.

It answers each step the way a model would, in the same text format (YAML
for steps 1-3, Markdown for 4-6), so its answers go through the very same
validation and writing as the `claude` backend's. What it knows comes from
`CodeMap` (Python's `ast`):

1. abstractions: one per Python module that defines something; when there
   are more modules than chapters allowed, one per package, and when still
   too many (or all in one package), the most connected ones; for a code
   base without Python, one per top-level directory;
2. relationships: the project-internal imports between them, each with the
   `path:line` of the import statement;
3. order: a topological order of the import graph, what is imported coming
   before what imports it (cycles broken at the least-dependent module);
4. chapters: the abstraction's files, its classes and functions with their
   docstrings and line citations, an excerpt of its first definition and a
   Mermaid diagram of its neighbours;
5. review: checks each citation against the file and quotes the line it
   points at, and adds the prerequisite chapter;
6. tutorial: an overview, a diagram of every relationship and the chapters
   in order.

Text copied from the repository (docstrings, the README) is flattened to one
line and defused: backticks, Markdown links and placeholder-like words
(`TODO`) cannot change the structure or fail the checks of the answer.
It writes English whatever the requested language.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fondation_contracts.course import StepUsage
from fondation_runner.backends.base import Answer, StepRequest
from fondation_runner.codemap import CodeMap, Definition, Module
from fondation_runner.safety import code_span
from fondation_runner.sources import SourceListing, list_sources
from fondation_runner.validate import PLACEHOLDER_PATTERNS

EXCERPT_LINES = 12
_CITATION = re.compile(r"`(?P<path>[\w./-]+):(?P<start>\d+)(?:-(?P<end>\d+))?`")


@dataclass(frozen=True)
class _Project:
    """What the backend knows of one checkout."""

    root: Path
    listing: SourceListing
    code: CodeMap
    readme: str

    def files_under(self, path: str) -> list[str]:
        """`path` itself when it is a file, else the listed files below it."""
        if path in self.listing.paths:
            return [path]
        prefix = path.rstrip("/") + "/"
        return [p for p in self.listing.paths if p.startswith(prefix)]


class OfflineBackend:
    name = "offline"

    def __init__(self) -> None:
        self._projects: dict[Path, _Project] = {}
        self._lock = asyncio.Lock()

    async def answer(self, request: StepRequest) -> Answer:
        project = await self._project(request.clone_dir)
        text = _WRITERS[request.step](project, request.inputs)
        return Answer(text=text, usage=StepUsage(step=request.step))

    async def _project(self, root: Path) -> _Project:
        async with self._lock:
            if root not in self._projects:
                self._projects[root] = await asyncio.to_thread(_read_project, root)
            return self._projects[root]


def _read_project(root: Path) -> _Project:
    listing = list_sources(root)
    readme_path = next(
        (p for p in listing.paths if "/" not in p and p.lower().startswith("readme")), None
    )
    readme = ""
    if readme_path:
        readme = (root / readme_path).read_text(encoding="utf-8", errors="replace")
    return _Project(root, listing, CodeMap.build(root, list(listing.paths)), readme)


# Step 1: abstractions --------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    name: str
    description: str
    files: tuple[str, ...]
    weight: int


def _abstractions(project: _Project, inputs: dict[str, Any]) -> str:
    limit = int(inputs["max_abstractions"])
    modules = [m for m in project.code.modules.values() if m.public_definitions]
    if modules:
        units = [_module_unit(project, m) for m in modules]
        if len(units) > limit:
            packages = _package_units(project, modules)
            if len(packages) > 1:  # one package for everything would teach nothing
                units = packages
    else:
        units = _directory_units(project)
    if len(units) > limit:
        kept = set(sorted(units, key=lambda u: (-u.weight, u.files))[:limit])
        units = [u for u in units if u in kept]
    names: set[str] = set()
    answer = []
    for unit in units:
        name = unit.name if unit.name.casefold() not in names else f"{unit.name} ({unit.files[0]})"
        names.add(name.casefold())
        answer.append(
            {"name": name, "description": unit.description, "file_paths": list(unit.files)}
        )
    return _yaml(answer)


def _module_unit(project: _Project, module: Module) -> _Unit:
    classes = [d.name for d in module.public_definitions if d.kind == "class"]
    functions = [d.name for d in module.public_definitions if d.kind == "function"]
    stem = posixpath.splitext(posixpath.basename(module.path))[0]
    if len(classes) == 1:
        name = classes[0]
    elif len(classes) == 2:
        name = f"{classes[0]} and {classes[1]}"
    else:
        name = f"{stem.replace('_', ' ').title()} module"
    summary = _first_paragraph(module.docstring) or f"The code of {code_span(module.path)}."
    parts = [summary]
    if classes:
        parts.append(f"It defines {_plural('class', 'classes', classes)}.")
    if functions:
        parts.append(f"It provides {_plural('function', 'functions', functions)}.")
    weight = len(module.definitions) + len(project.code.importers_of(module.path))
    return _Unit(name, " ".join(parts), (module.path,), weight)


def _package_units(project: _Project, modules: list[Module]) -> list[_Unit]:
    packages: dict[str, list[Module]] = {}
    for module in modules:
        packages.setdefault(posixpath.dirname(module.path) or ".", []).append(module)
    units = []
    for directory, members in sorted(packages.items()):
        init = project.code.modules.get(posixpath.join(directory, "__init__.py"))
        label = "top-level modules" if directory == "." else f"{directory} package"
        summary = _first_paragraph(init.docstring) if init else ""
        names = [posixpath.basename(m.path) for m in members]
        description = f"{summary} It gathers {_plural('module', 'modules', names)}.".strip()
        weight = sum(len(m.definitions) + len(project.code.importers_of(m.path)) for m in members)
        units.append(_Unit(label, description, tuple(m.path for m in members), weight))
    return units


def _directory_units(project: _Project) -> list[_Unit]:
    groups: dict[str, list[str]] = {}
    for path in project.listing.paths:
        top = path.split("/", 1)[0] if "/" in path else "."
        groups.setdefault(top, []).append(path)
    units = []
    for top, files in sorted(groups.items()):
        if top == ".":
            name, paths = "Project root files", tuple(files)
        else:
            name, paths = f"{top}/ directory", (top,)
        description = (
            f"{'The files at the root of the project' if top == '.' else f'The {top}/ directory'}"
            f" holds {_plural('file', 'files', [posixpath.basename(f) for f in files])}."
        )
        units.append(_Unit(name, description, paths, len(files)))
    return units


# Step 2: relationships -------------------------------------------------------


def _relationships(project: _Project, inputs: dict[str, Any]) -> str:
    abstractions = inputs["abstractions"]
    owner = _owners(project, abstractions)
    edges: dict[tuple[int, int], tuple[str, int, list[str]]] = {}
    for module in project.code.modules.values():
        source = owner.get(module.path)
        for imported in module.imports:
            target = owner.get(imported.target)
            if source is None or target is None or source == target:
                continue
            names = edges.setdefault((source, target), (module.path, imported.line, []))[2]
            names.extend(n for n in imported.names if n not in names)
    relationships = [
        {
            "from_abstraction": source,
            "to_abstraction": target,
            "label": f"imports {_shortlist(names)}",
            "evidence": f"{path}:{line}",
        }
        for (source, target), (path, line, names) in sorted(edges.items())
    ]
    overview = _first_paragraph(_readme_text(project.readme))
    parts = [overview] if overview else []
    parts.append(
        f"The code is organised into {len(abstractions)} parts: "
        f"{', '.join(a['name'] for a in abstractions)}."
    )
    return _yaml({"summary": " ".join(parts), "relationships": relationships})


def _owners(project: _Project, abstractions: list[dict[str, Any]]) -> dict[str, int]:
    """Which abstraction each listed file belongs to (the first one that names it)."""
    owner: dict[str, int] = {}
    for index, abstraction in enumerate(abstractions):
        for path in abstraction["file_paths"]:
            for file in project.files_under(path):
                owner.setdefault(file, index)
    return owner


# Step 3: order ---------------------------------------------------------------


def _order(project: _Project, inputs: dict[str, Any]) -> str:
    abstractions = inputs["abstractions"]
    count = len(abstractions)
    needs: dict[int, set[int]] = {i: set() for i in range(count)}
    for relationship in inputs["relationships"]["relationships"]:
        needs[relationship["from_abstraction"]].add(relationship["to_abstraction"])
    placed: list[int] = []
    entries = []
    while len(placed) < count:
        remaining = [i for i in range(count) if i not in placed]
        ready = [i for i in remaining if needs[i] <= set(placed)]
        cyclic = not ready
        chosen = (
            ready[0] if ready else min(remaining, key=lambda i: (len(needs[i] - set(placed)), i))
        )
        deps = sorted(needs[chosen] & set(placed))
        if cyclic:
            others = sorted(needs[chosen] - set(placed))
            reasoning = (
                f"It is part of an import cycle with {_names(abstractions, others)}; "
                "it comes first because it depends on the fewest parts not yet covered."
            )
        elif deps:
            reasoning = f"It builds on {_names(abstractions, deps)}, covered in earlier chapters."
        else:
            reasoning = "It depends on no other part of the project, so it can be read first."
        placed.append(chosen)
        entries.append(
            {"index": chosen, "name": abstractions[chosen]["name"], "reasoning": reasoning}
        )
    return _yaml({"order": entries})


# Step 4: chapters ------------------------------------------------------------


def _chapter(project: _Project, inputs: dict[str, Any]) -> str:
    abstraction = inputs["abstraction"]
    chapters = inputs["chapters"]
    position = inputs["position"]
    own_id = inputs["abstraction_id"]
    files_by_id = {c["abstraction_id"]: c["file_name"] for c in chapters}
    names = inputs["abstraction_names"]
    files = [f for p in abstraction["file_paths"] for f in project.files_under(p)]
    modules = [project.code.modules[f] for f in files if f in project.code.modules]

    out = [f"# Chapter {position + 1}: {abstraction['name']}", "", abstraction["description"], ""]
    out += ["## Where it lives", ""]
    for path in files:
        module = project.code.modules.get(path)
        summary = _first_sentence(module.docstring) if module else ""
        out.append(f"- {_citation(project, path)}{f': {summary}' if summary else ''}")
    out.append("")
    definitions = [(m, d) for m in modules for d in m.public_definitions]
    if definitions:
        out += ["## What it defines", ""]
        for module, definition in definitions:
            out += _definition_section(module, definition)
        module, first = definitions[0]
        out += _excerpt(project, module.path, first.line, first.end_line)

    out += ["## How it connects", ""]
    related = inputs["related"]
    if related:
        out += _diagram(names, related, "LR", highlight=own_id)
        for r in related:
            if r["from_abstraction"] == own_id:
                other = _link(names[r["to_abstraction"]], files_by_id.get(r["to_abstraction"]))
                out.append(f"- It relies on {other}: {r['label']}, see `{r['evidence']}`.")
            else:
                other = _link(names[r["from_abstraction"]], files_by_id.get(r["from_abstraction"]))
                out.append(f"- {other} relies on it: {r['label']}, see `{r['evidence']}`.")
        out.append("")
    else:
        out += ["No other part of the project imports it, and it imports none of them.", ""]

    out += ["## What comes next", ""]
    if position + 1 < len(chapters):
        following = chapters[position + 1]
        out.append(f"Next, [{following['name']}]({following['file_name']}).")
    else:
        out.append(
            "This is the last chapter; the [course index](../tutorials/index.md) lists them all."
        )
    return "\n".join(out) + "\n"


def _definition_section(module: Module, definition: Definition) -> list[str]:
    keyword = "class" if definition.kind == "class" else "def"
    lines = [
        f"### `{keyword} {definition.name}`",
        "",
        f"Defined at {code_span(f'{module.path}:{definition.line}-{definition.end_line}')}."
        + (f" {_first_paragraph(definition.docstring)}" if definition.docstring else ""),
    ]
    methods = [m for m in definition.methods if m.public]
    if methods:
        listed = ", ".join(
            f"{code_span(m.name)} ({code_span(f'{module.path}:{m.line}')})" for m in methods
        )
        lines += ["", f"Its methods: {listed}."]
    return [*lines, ""]


def _excerpt(project: _Project, path: str, start: int, end: int) -> list[str]:
    source = (project.root / path).read_text(encoding="utf-8", errors="replace").splitlines()
    last = min(end, start + EXCERPT_LINES - 1, len(source))
    body = source[start - 1 : last]
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    return [
        f"Here is how it starts ({code_span(f'{path}:{start}-{last}')}):",
        "",
        f"{fence}python",
        *body,
        fence,
        "",
    ]


# Step 5: review --------------------------------------------------------------


def _review(project: _Project, inputs: dict[str, Any]) -> str:
    chapter = inputs["chapter_markdown"].rstrip("\n").split("\n")
    position = inputs["position"]
    chapters = inputs["chapters"]
    if position > 0:
        previous = chapters[position - 1]
        note = (
            f"> **Before you start:** this chapter assumes you have read "
            f"[{previous['name']}]({previous['file_name']})."
        )
    else:
        note = "> **Before you start:** this is the first chapter; it assumes no earlier one."
    checked = []
    seen: set[str] = set()
    for match in _CITATION.finditer("\n".join(chapter)):
        if match.group() in seen:
            continue
        seen.add(match.group())
        quoted = _quote_line(project, match.group("path"), int(match.group("start")))
        if quoted:
            checked.append(f"- {match.group()} starts with {quoted}")
    body = [chapter[0], "", note, *chapter[1:], ""]
    if checked:
        body += [
            "## Cited code, checked",
            "",
            "Each citation of this chapter, with the line it points at:",
            "",
            *checked,
            "",
        ]
    return "\n".join(body)


def _quote_line(project: _Project, path: str, line: int) -> str:
    source = (project.root / path).read_text(encoding="utf-8", errors="replace").splitlines()
    text = source[line - 1].strip() if 0 < line <= len(source) else ""
    return code_span(text) if text else ""


# Step 6: tutorial ------------------------------------------------------------


def _tutorial(project: _Project, inputs: dict[str, Any]) -> str:
    abstractions = inputs["abstractions"]
    names = [a["name"] for a in abstractions]
    chapters = inputs["chapters"]
    out = [f"# {inputs['project_name']}: a guided tour of the code", ""]
    if inputs["summary"]:
        out += [inputs["summary"], ""]
    out += [
        f"The course has {len(chapters)} chapters, one for each part of the code, in an order "
        "where every chapter only relies on earlier ones.",
        "",
        "## How the parts fit together",
        "",
    ]
    out += _diagram(names, inputs["relationships"], "TD", nodes=range(len(names)))
    out += ["## Chapters", ""]
    descriptions = {a["name"]: a["description"] for a in abstractions}
    for entry in chapters:
        blurb = _first_sentence(descriptions.get(entry["name"], ""))
        out.append(
            f"{entry['number']}. [{_bracket_safe(entry['title'])}]({entry['link']})"
            + (f": {blurb}" if blurb else "")
        )
    return "\n".join(out) + "\n"


# Shared ----------------------------------------------------------------------


def _diagram(
    names: list[str],
    relationships: list[dict[str, Any]],
    direction: str,
    *,
    highlight: int | None = None,
    nodes: Iterable[int] = (),
) -> list[str]:
    shown = sorted(
        set(nodes)
        | {r["from_abstraction"] for r in relationships}
        | {r["to_abstraction"] for r in relationships}
    )
    lines = ["```mermaid", f"flowchart {direction}"]
    lines += [f'    A{i}["{_mermaid_text(names[i])}"]' for i in shown]
    lines += [
        f'    A{r["from_abstraction"]} -->|"{_mermaid_text(r["label"])}"| A{r["to_abstraction"]}'
        for r in relationships
    ]
    if highlight is not None:
        lines += ["    classDef current stroke-width:3px", f"    class A{highlight} current"]
    return [*lines, "```", ""]


def _mermaid_text(text: str) -> str:
    return " ".join(text.split()).replace('"', "'").replace("|", "/")


def _citation(project: _Project, path: str) -> str:
    lines = project.code.modules[path].line_count if path in project.code.modules else None
    if lines is None:
        data = (project.root / path).read_bytes()
        lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return code_span(f"{path}:1-{lines}") if lines else f"{code_span(path)} (empty)"


def _link(name: str, file_name: str | None) -> str:
    return f"[{_bracket_safe(name)}]({file_name})" if file_name else name


def _bracket_safe(text: str) -> str:
    return text.replace("[", "(").replace("]", ")")


def _first_paragraph(text: str) -> str:
    paragraph = text.strip().split("\n\n", 1)[0]
    return _defuse(" ".join(paragraph.split()))


def _first_sentence(text: str) -> str:
    paragraph = _first_paragraph(text)
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def _readme_text(readme: str) -> str:
    """The README without headings and code blocks, paragraphs kept."""
    kept: list[str] = []
    fenced = False
    for line in readme.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and not line.lstrip().startswith("#"):
            kept.append(line)
    return "\n".join(kept)


def _defuse(text: str) -> str:
    """Make copied prose inert in Markdown: no code spans or links of its own, and
    placeholder-like words quoted as code instead of read as unfinished text."""
    text = text.replace("`", "'").replace("](", "] (")
    spans: list[tuple[int, int]] = []
    for pattern, _ in PLACEHOLDER_PATTERNS:
        spans.extend(m.span() for m in pattern.finditer(text))
    for start, end in sorted(_merge(spans), reverse=True):
        text = f"{text[:start]}`{text[start:end]}`{text[end:]}"
    return text


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _longest_backtick_run(lines: list[str]) -> int:
    runs = [len(m.group()) for line in lines for m in re.finditer(r"`+", line)]
    return max(runs, default=0)


def _plural(one: str, many: str, items: list[str]) -> str:
    quoted = [f"`{i}`" for i in items]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    return f"{one if len(items) == 1 else many} {listed}"


def _shortlist(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def _names(abstractions: list[dict[str, Any]], ids: list[int]) -> str:
    names = [abstractions[i]["name"] for i in ids]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


_WRITERS: dict[str, Callable[[_Project, dict[str, Any]], str]] = {
    "abstractions": _abstractions,
    "relationships": _relationships,
    "order": _order,
    "chapters": _chapter,
    "review": _review,
    "tutorial": _tutorial,
}
