"""A deterministic, network-free backend that reads the code's own structure.

It answers each step the way a model would, in the same text format (YAML
for steps 1-3, Markdown for 4-6), so its answers go through the very same
validation and writing as the `claude` backend's. What it knows comes from
`CodeMap` (Python's `ast`):

1. abstractions: the code's own units (`offline_units`): one per non-test
   module that holds code, merged by import coupling when there are more
   than chapters allowed, each with the tests that test it; for a code
   base without Python, one per top-level directory;
2. relationships: the project-internal imports between them (tests left
   out), each with the `path:line` of the import statement;
3. order: a topological order of the import graph, what is imported coming
   before what imports it (cycles broken at the least-dependent module);
4. chapters: what the unit is for (its docstrings), what it defines (with
   line citations and an excerpt), how it is used (the call sites of its
   names elsewhere in the project, quoted), how it is tested, and a Mermaid
   diagram of its neighbours;
5. review: checks each citation against the file and quotes the line it
   points at, and adds the prerequisite chapter;
6. tutorial: for each chapter a hands-on task on its main class or function
   (a scaffold to complete, the definition and a real call site to read, a
   command to check it), and the overview page: a diagram of every
   relationship and the reading path, naming documents by their titles.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fondation_contracts.course import StepUsage
from fondation_runner.backends.base import Answer, StepRequest
from fondation_runner.backends.offline_units import Unit, units_of, weight
from fondation_runner.codemap import CodeMap, Definition, Module
from fondation_runner.safety import code_span
from fondation_runner.sources import SourceListing, list_sources
from fondation_runner.validate import PLACEHOLDER_PATTERNS

EXCERPT_LINES = 12
MAX_LISTED = 12
"""Definitions, methods, call sites or tests listed in a chapter, at most."""
MAX_CHECKED = 20
"""Citations a review quotes back, at most."""
MAX_NAMED = 8
"""Names given in one sentence of a description, at most."""
_CITATION = re.compile(r"`(?P<path>[\w./-]+):(?P<start>\d+)(?:-(?P<end>\d+))?`")
_BARE_CITATION = re.compile(r"[\w./-]+:\d+(?:-\d+)?")


@dataclass(frozen=True)
class _Project:
    """What the backend knows of one checkout."""

    root: Path
    listing: SourceListing
    code: CodeMap
    readme: str
    _lines: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def files_under(self, path: str) -> list[str]:
        """`path` itself when it is a file, else the listed files below it."""
        if path in self.listing.paths:
            return [path]
        prefix = path.rstrip("/") + "/"
        return [p for p in self.listing.paths if p.startswith(prefix)]

    def lines(self, path: str) -> list[str]:
        if path not in self._lines:
            text = (self.root / path).read_text(encoding="utf-8", errors="replace")
            self._lines[path] = text.splitlines()
        return self._lines[path]

    def line(self, path: str, number: int) -> str:
        """Line `number` of `path`, stripped; `` when there is none."""
        lines = self.lines(path)
        return lines[number - 1].strip() if 0 < number <= len(lines) else ""


class OfflineBackend:
    name = "offline"

    def __init__(self) -> None:
        self._projects: dict[Path, _Project] = {}
        self._lock = asyncio.Lock()

    async def answer(self, request: StepRequest) -> Answer:
        project = await self._project(request.clone_dir)
        writer = _WRITERS[request.step]
        if request.inputs.get("page") == "overview":
            writer = _overview
        text = writer(project, request.inputs)
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
    found = units_of(project.code, limit)
    if found:
        units = [_described(project, unit) for unit in found]
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


def _described(project: _Project, unit: Unit) -> _Unit:
    """A unit named after its main module, described from its docstrings and names."""
    modules = [project.code.modules[p] for p in unit.modules]
    main = modules[0]
    name = _module_name(main) if len(modules) == 1 else _group_name(unit)
    summary = _first_paragraph(main.docstring) or f"The code of {code_span(main.path)}."
    parts = [summary if summary.endswith((".", "!", "?", ":")) else f"{summary}."]
    if len(modules) > 1:
        parts.append(
            f"It gathers {_plural('module', 'modules', [m.path for m in modules], MAX_NAMED)}."
        )
    public = [d for m in modules for d in m.public_definitions]
    classes = [d.name for d in public if d.kind == "class"]
    functions = [d.name for d in public if d.kind == "function"]
    if classes:
        parts.append(f"It defines {_plural('class', 'classes', classes, MAX_NAMED)}.")
    if functions:
        parts.append(f"It provides {_plural('function', 'functions', functions, MAX_NAMED)}.")
    if unit.tests:
        parts.append(f"Its tests are in {_plural('file', 'files', list(unit.tests), MAX_NAMED)}.")
    total = sum(weight(m, project.code) for m in modules)
    return _Unit(name, " ".join(parts), unit.files, total)


def _module_name(module: Module) -> str:
    classes = [d.name for d in module.public_definitions if d.kind == "class"]
    if len(classes) == 1:
        return classes[0]
    if len(classes) == 2:
        return f"{classes[0]} and {classes[1]}"
    if posixpath.basename(module.path) == "__init__.py":
        return f"{_stem(module.path)} package"
    return f"{_stem(module.path).replace('_', ' ').title()} module"


def _group_name(unit: Unit) -> str:
    stems = [_stem(p) for p in unit.modules]
    if len(stems) > 3:
        listed = f"{', '.join(stems[:2])}, {stems[2]} and {len(stems) - 3} more"
    else:
        listed = f"{', '.join(stems[:-1])} and {stems[-1]}"
    return f"{listed[0].upper()}{listed[1:]} modules"


def _stem(path: str) -> str:
    """`pkg/queue.py` -> `queue`; `pkg/__init__.py` -> `pkg`."""
    module = path.removesuffix(".py").removesuffix("/__init__")
    return posixpath.basename(module) or path


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
        if module.is_test:
            continue  # a test importing another unit says nothing of the design
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
    sources = [m for m in modules if not m.is_test] or modules
    tests = [m for m in modules if m.is_test and m not in sources]

    out = [f"# Chapter {position + 1}: {abstraction['name']}", "", abstraction["description"], ""]
    out += ["## What it is for", ""]
    for path in files:
        module = project.code.modules.get(path)
        if module is not None and module in tests:
            continue
        summary = _first_sentence(module.docstring) if module else ""
        out.append(f"- {_citation(project, path)}{f': {summary}' if summary else ''}")
    out.append("")
    # Classes first (a unit's main types), then functions, each in module order.
    definitions = sorted(
        ((m, d) for m in sources for d in m.public_definitions),
        key=lambda pair: pair[1].kind != "class",
    )
    if definitions:
        out += ["## What it defines", ""]
        for module, definition in definitions[:MAX_LISTED]:
            out += _definition_section(module, definition)
        if len(definitions) > MAX_LISTED:
            rest = [d.name for _, d in definitions[MAX_LISTED:]]
            out += [f"It also defines {_plural('name', 'names', rest, MAX_LISTED)}.", ""]
        module, first = definitions[0]
        out += _excerpt(project, module.path, first.line, first.end_line)

    out += ["## How it is used", ""]
    sites = _call_sites(project, {m.path for m in modules})
    if sites:
        out += ["Where the rest of the project uses it:", ""]
        for path, line, name in sites[:MAX_LISTED]:
            quoted = _quoted(project, path, line)
            out.append(
                f"- {code_span(f'{path}:{line}')} uses {code_span(name)}"
                + (f": {quoted}" if quoted else "")
            )
        if len(sites) > MAX_LISTED:
            out.append(f"- and {len(sites) - MAX_LISTED} more places.")
        out.append("")
    else:
        out += [
            "No other module of the project uses it directly: it is an entry point, "
            "run or imported from outside the code shown here.",
            "",
        ]
    if tests:
        out += ["## How it is tested", ""]
        for module in tests:
            cases = [d for d in module.definitions if d.name.lower().startswith("test")]
            listed = ", ".join(
                f"{code_span(d.name)} ({code_span(f'{module.path}:{d.line}')})"
                for d in cases[:MAX_LISTED]
            )
            more = f" and {len(cases) - MAX_LISTED} more" if len(cases) > MAX_LISTED else ""
            out.append(
                f"- {_citation(project, module.path)}" + (f": {listed}{more}" if listed else "")
            )
        out.append("")

    out += ["## How it connects", ""]
    related = inputs["related"]
    if related:
        out += _diagram(names, related, "LR", highlight=own_id)
        for r in related:
            if r["from_abstraction"] == own_id:
                other = _link(names[r["to_abstraction"]], files_by_id.get(r["to_abstraction"]))
                out.append(f"- It relies on {other}: {r['label']}, see {code_span(r['evidence'])}.")
            else:
                other = _link(names[r["from_abstraction"]], files_by_id.get(r["from_abstraction"]))
                out.append(f"- {other} relies on it: {r['label']}, see {code_span(r['evidence'])}.")
        out.append("")
    else:
        out += _inside_diagram(abstraction["name"], sources, tests)
        out += ["No other part of the project imports it, and it imports none of them.", ""]

    out += ["## What comes next", ""]
    if position + 1 < len(chapters):
        following = chapters[position + 1]
        out.append(f"Next, [{following['name']}]({following['file_name']}).")
    else:
        out.append(
            "This is the last chapter; the [course overview](../tutorials/index.md) lists them all."
        )
    return "\n".join(out) + "\n"


def _call_sites(project: _Project, own: set[str]) -> list[tuple[str, int, str]]:
    """(path, line, name) where code outside `own` uses a name of `own`: code first,
    then tests, one entry per line."""
    sites: dict[tuple[str, int], str] = {}
    for module in sorted(project.code.modules.values(), key=lambda m: (m.is_test, m.path)):
        if module.path in own:
            continue
        for use in module.uses:
            if use.target in own and (module.path, use.line) not in sites:
                sites[(module.path, use.line)] = use.name or _stem(use.target)
    return [(path, line, name) for (path, line), name in sites.items()]


def _quoted(project: _Project, path: str, line: int) -> str:
    """The line as a code span; `` when it could be read as a citation itself."""
    text = project.line(path, line)
    if not text or _BARE_CITATION.fullmatch(text):
        return ""
    return code_span(text)


def _inside_diagram(name: str, sources: list[Module], tests: list[Module]) -> list[str]:
    """A unit with no neighbours: itself, its modules' main definitions and its tests."""
    lines = ["```mermaid", "flowchart LR", f'    U["{_mermaid_text(name)}"]']
    shown = [(m, d) for m in sources for d in m.public_definitions][:MAX_NAMED]
    for number, (module, definition) in enumerate(shown):
        label = f"{definition.name} ({posixpath.basename(module.path)})"
        lines.append(f'    D{number}["{_mermaid_text(label)}"]')
        lines.append(f"    U -->|defines| D{number}")
    for number, module in enumerate(tests[:MAX_NAMED]):
        lines.append(f'    T{number}["{_mermaid_text(posixpath.basename(module.path))}"]')
        lines.append(f"    T{number} -->|tests| U")
    return [*lines, "```", ""]


def _definition_section(module: Module, definition: Definition) -> list[str]:
    keyword = "class" if definition.kind == "class" else "def"
    lines = [
        f"### {code_span(f'{keyword} {definition.name}')}",
        "",
        f"Defined at {code_span(f'{module.path}:{definition.line}-{definition.end_line}')}."
        + (f" {_first_paragraph(definition.docstring)}" if definition.docstring else ""),
    ]
    methods = [m for m in definition.methods if m.public]
    if methods:
        listed = ", ".join(
            f"{code_span(m.name)} ({code_span(f'{module.path}:{m.line}')})"
            for m in methods[:MAX_LISTED]
        )
        more = f" and {len(methods) - MAX_LISTED} more" if len(methods) > MAX_LISTED else ""
        lines += ["", f"Its methods: {listed}{more}."]
    return [*lines, ""]


def _excerpt(project: _Project, path: str, start: int, end: int) -> list[str]:
    source = project.lines(path)
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
    checked: list[str] = []
    seen: set[str] = set()
    for match in _CITATION.finditer("\n".join(chapter)):
        if match.group() in seen or len(checked) == MAX_CHECKED:
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
            "The citations of this chapter, with the line each points at:",
            "",
            *checked,
            "",
        ]
    return "\n".join(body)


def _quote_line(project: _Project, path: str, line: int) -> str:
    text = project.line(path, line)
    return code_span(text) if text else ""


# Step 6: tutorial ------------------------------------------------------------


def _tutorial(project: _Project, inputs: dict[str, Any]) -> str:
    """A hands-on tutorial for one chapter: a task on its main definition."""
    abstraction = inputs["abstraction"]
    entries = inputs["chapters"]
    position = inputs["position"]
    files = [f for p in abstraction["file_paths"] for f in project.files_under(p)]
    modules = [project.code.modules[f] for f in files if f in project.code.modules]
    sources = [m for m in modules if not m.is_test] or modules
    tests = [m for m in modules if m.is_test and m not in sources]
    out = [f"# {inputs['title']}", ""]
    introduction = f"This tutorial puts **{inputs['chapter_title']}** into practice: read it first."
    earlier = [e for e in entries if e["number"] < position + 1]
    if earlier:
        introduction += f" It also uses what **{earlier[-1]['chapter_title']}** explains."
    out += [introduction, ""]
    subject = _subject(sources)
    if subject is None:
        out += _exploration(project, files)
    else:
        module, definition = subject
        out += _exercise(project, module, definition, tests)
    return "\n".join(out) + "\n"


def _subject(sources: list[Module]) -> tuple[Module, Definition] | None:
    """The definition a tutorial practises: the main module's first public class,
    else its first public function, else the same in the other modules."""
    for module in sources:
        public = module.public_definitions
        for kind in ("class", "function"):
            found = [d for d in public if d.kind == kind]
            if found:
                return module, found[0]
    return None


def _exercise(
    project: _Project, module: Module, definition: Definition, tests: list[Module]
) -> list[str]:
    name = definition.name
    dotted = _dotted_module(project, module.path)
    stem = _stem(module.path)
    script = f"try_{re.sub(r'[^0-9a-zA-Z_]', '_', stem)}.py"
    where = f"{code_span(f'{module.path}:{definition.line}-{definition.end_line}')}"
    parameters = _parameters(definition)
    sites = [s for s in _call_sites(project, {module.path}) if s[2] == name]
    site = sites[0] if sites else None
    is_class = definition.kind == "class"
    verb = "build" if is_class else "call"
    result = "an instance" if is_class else "a result"
    out = [
        "## Your task",
        "",
        f"Write a short script, {code_span(script)}, that imports {code_span(name)} "
        f"from {code_span(dotted)}, "
        f"{'builds an instance of it' if is_class else 'calls it'} the way the project does, "
        f"and prints what it gets back.",
        "",
        "Acceptance criteria:",
        "",
        f"- [ ] {code_span(script)} imports {code_span(name)} from {code_span(dotted)}.",
        f"- [ ] It {verb}s {code_span(name)} with arguments that make sense for the project.",
        f"- [ ] Run from the root of the repository, it prints {result} and no error.",
        "",
        "## Before you start",
        "",
        f"- Read {where}, where {code_span(name)} is defined"
        + (f": {_first_sentence(definition.docstring)}" if definition.docstring else "."),
    ]
    if site:
        quoted = _quoted(project, site[0], site[1])
        out.append(
            f"- See how the project uses it at {code_span(f'{site[0]}:{site[1]}')}"
            + (f": {quoted}." if quoted else ".")
        )
    for test in tests[:2]:
        out.append(f"- Its tests, {_citation(project, test.path)}, show what it is expected to do.")
    out += ["", "## Scaffold", "", f"Create {code_span(script)} at the root of the repository:", ""]
    variable = "thing" if is_class else "result"
    if all(part.isidentifier() for part in dotted.split(".")):
        header = [f"from {dotted} import {name}"]
    else:  # a file name Python cannot import by statement (`my-module.py`)
        header = ["import importlib", "", f"{name} = importlib.import_module({dotted!r}).{name}"]
    body = [
        *header,
        "",
        "",
        "def main() -> None:",
        f"    # {name} takes: {parameters or 'no argument'}",
    ]
    if site:
        body.append(f"    # {site[0]}:{site[1]} shows one way to {verb} it.")
    body += [
        f"    {variable} = {name}()  # give it the arguments it needs",
        f"    print({variable})",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    out += [f"{fence}python", *body, fence, ""]
    out += [
        "## Step by step",
        "",
        f"1. Open {where} and list what {code_span(name)} needs"
        + (f": {code_span(_code_text(parameters))}." if parameters else "; it takes no argument."),
    ]
    if is_class:
        methods = [m for m in definition.methods if m.public][:3]
        if methods:
            listed = ", ".join(
                f"{code_span(m.name)} ({code_span(f'{module.path}:{m.line}')})" for m in methods
            )
            out.append(f"2. Pick one of its methods to call once the object exists: {listed}.")
        else:
            out.append(f"2. Decide what to print to show the object's state: {name} has no method.")
    else:
        out.append("2. Decide which inputs to try first: a typical one, then an edge case.")
    if site:
        out.append(
            f"3. Copy the arguments from {code_span(f'{site[0]}:{site[1]}')} into the scaffold, "
            "replacing the project's variables with values of your own."
        )
    else:
        out.append("3. Fill in the arguments in the scaffold with values of your own.")
    out += [
        "",
        "## How to check it",
        "",
        f"- Run `python {script}` from the root of the repository: it prints {result} "
        "and ends without a traceback.",
    ]
    if tests:
        listed = " ".join(t.path for t in tests[:3])
        out.append(
            f"- Run `python -m pytest {listed}`: the project's own tests still pass, "
            "so your script changed nothing in the code."
        )
    else:
        out.append(
            f"- Turn the script into a test: assert on what {code_span(name)} returns instead of "
            "printing it, and run it with `python -m pytest`."
        )
    out += [
        "",
        "## Going further",
        "",
        f"- Try an input {code_span(name)} should refuse, and read {where} "
        "to explain what happens.",
        "- Find another place in the project that needs the same thing, and use it there.",
        "",
    ]
    return out


def _exploration(project: _Project, files: list[str]) -> list[str]:
    """A tutorial for code the backend cannot read: find one's way in its files."""
    shown = files[:3]
    first = shown[0]
    commands = [f"wc -l {' '.join(shown)}", f"head -n 20 {first}"]
    fence = "`" * max(3, _longest_backtick_run(commands) + 1)
    return [
        "## Your task",
        "",
        "Find your way in these files and write down, in three sentences, what each is for.",
        "",
        "Acceptance criteria:",
        "",
        "- [ ] Each file below has one sentence on what it is for.",
        "- [ ] Each sentence points at the line that shows it, as `path:line`.",
        "",
        "## Before you start",
        "",
        *[f"- {_citation(project, path)}" for path in shown],
        "",
        "## Scaffold",
        "",
        "Start from these commands, run at the root of the repository:",
        "",
        f"{fence}sh",
        *commands,
        fence,
        "",
        "## Step by step",
        "",
        "1. Run the commands and note the size of each file.",
        f"2. Read {_citation(project, first)} from the top and find its main part.",
        "3. Write your three sentences, each with a `path:line` reference.",
        "",
        "## How to check it",
        "",
        "- Open each `path:line` you wrote: the line must show what your sentence says.",
        "",
        "## Going further",
        "",
        "- Find which other file of the project uses these ones, and how.",
        "",
    ]


def _overview(project: _Project, inputs: dict[str, Any]) -> str:
    """The course's front page: no link to another document, only their titles."""
    abstractions = inputs["abstractions"]
    names = [a["name"] for a in abstractions]
    entries = inputs["chapters"]
    out = [f"# {inputs['project_name']}: course overview", ""]
    if inputs["summary"]:
        out += [inputs["summary"], ""]
    out += [
        f"The course has {len(entries)} chapters, one for each part of the code, in an order "
        "where every chapter only relies on earlier ones. Each chapter comes with a hands-on "
        "tutorial that puts it into practice.",
        "",
        "## How the parts fit together",
        "",
    ]
    out += _diagram(names, inputs["relationships"], "TD", nodes=range(len(names)))
    out += ["## Reading path", ""]
    descriptions = {a["name"]: a["description"] for a in abstractions}
    for entry in entries:
        blurb = _first_sentence(descriptions.get(entry["name"], ""))
        out.append(
            f"{entry['number']}. **{_bold_safe(entry['chapter_title'])}**"
            + (f": {blurb}" if blurb else "")
            + f" Practice: **{_bold_safe(entry['tutorial_title'])}**."
        )
    return "\n".join(out) + "\n"


def _dotted_module(project: _Project, path: str) -> str:
    """The name to import a module by: `src/taskq/queue.py` -> `taskq.queue`, from
    the outermost directory that is a package (the analysed directory itself when
    it holds an `__init__.py`)."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    directories = path.split("/")[:-1]
    start = len(directories)
    while start > 0 and "/".join([*directories[:start], "__init__.py"]) in project.code.modules:
        start -= 1
    dotted = parts[start:]
    if start == 0 and "__init__.py" in project.code.modules:
        dotted = [project.root.resolve().name, *dotted]
    return ".".join(dotted) or project.root.resolve().name


def _parameters(definition: Definition) -> str:
    """What calling a function or building a class takes, without `self`."""
    signature = definition.signature
    if definition.kind == "class":
        init = next((m for m in definition.methods if m.name == "__init__"), None)
        signature = init.signature if init else ""
    parts = [p.strip() for p in signature.split(",")] if signature else []
    if parts and parts[0] in ("self", "cls"):
        parts = parts[1:]
    return ", ".join(parts)


def _code_text(text: str) -> str:
    """Text for inside a one-backtick code span."""
    return text.replace("`", "'")


def _bold_safe(text: str) -> str:
    return text.replace("*", "").replace("[", "(").replace("]", ")")


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


def _plural(one: str, many: str, items: list[str], limit: int = 0) -> str:
    """`class `A``, `classes `A`, `B` and `C``; past `limit` items, `... and N more`."""
    quoted = [f"{code_span(i)}" for i in items]
    if limit and len(quoted) > limit:
        quoted = [*quoted[:limit], f"{len(items) - limit} more"]
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
