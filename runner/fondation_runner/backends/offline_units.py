"""The units an offline course teaches: the code's own modules, grouped.

A model chooses a course's abstractions by reading the code; the offline
backend has to choose them from structure alone, and a course of "the
package" and "the tests" teaches nothing. So every non-test module that
holds code is a unit of its own, as long as the chapters allowed suffice;
when they do not, the units that import each other the most are merged
first (imports between them over the product of their sizes, so a module
everything imports does not swallow the others), then the smallest ones of
a same directory. Test modules are not units: each joins the unit it tests,
so its tests are taught in that unit's chapter. That unit is found, in turn,
by the test's name (`test_queue.py` tests `queue.py`, `test_dump.py` tests
the module defining `dump`), by what the test imports the most, and by the
unit of the test helpers it imports (`from tests import helpers`).

Everything is sorted, so the same tree always gives the same units.
"""

from __future__ import annotations

import heapq
import posixpath
from dataclasses import dataclass

from fondation_runner.codemap import CodeMap, Module

MIN_NAME_MATCH = 3
"""A test's name matches a module's when one starts with the other, this long at least."""


@dataclass(frozen=True)
class Unit:
    """One future chapter: source modules (the first is its main one) and their tests."""

    modules: tuple[str, ...]
    tests: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.modules, *self.tests)


def units_of(code: CodeMap, limit: int) -> list[Unit]:
    """At most `limit` units covering every non-test module that holds code, in
    the order of their main module's path; [] when there is no Python to teach."""
    modules = sorted(code.modules.values(), key=lambda m: m.path)
    sources = [m for m in modules if not m.is_test and m.statements]
    tests = [m for m in modules if m.is_test and m.statements]
    if not sources:  # only tests: they are the code
        sources, tests = tests, []
    if not sources:
        return []
    groups = _merge([[m.path] for m in sources], code, max(1, limit))
    ordered = sorted((_main_first(group, code) for group in groups), key=lambda g: g[0])
    owner = {path: i for i, group in enumerate(ordered) for path in group}
    tested: dict[str, int] = {}
    for test in tests:
        found = _by_name(test, ordered, code)
        if found is None:
            found = _most_imported(test, owner)
        if found is not None:
            tested[test.path] = found
    for _ in range(2):  # tests importing test helpers follow the helpers
        for test in tests:
            if test.path not in tested:
                found = _most_imported(test, tested)
                if found is not None:
                    tested[test.path] = found
    return [
        Unit(tuple(group), tuple(t.path for t in tests if tested.get(t.path) == i))
        for i, group in enumerate(ordered)
    ]


def weight(module: Module, code: CodeMap) -> int:
    """How central a module is: what it defines and how often it is imported."""
    return len(module.definitions) + len(code.importers_of(module.path))


def _merge(groups: list[list[str]], code: CodeMap, limit: int) -> list[list[str]]:
    """Merge groups, most coupled first, until at most `limit` remain.

    Candidate pairs wait in a heap, each stamped with the versions of its two
    groups; a merge bumps the surviving group's version, so stale pairs are
    skipped when they come up, and the work stays near-linear in the imports."""
    index = {path: i for i, group in enumerate(groups) for path in group}
    alive = dict(enumerate(groups))
    links: dict[int, dict[int, int]] = {i: {} for i in alive}
    for module in code.modules.values():
        if module.path not in index:
            continue
        for imported in module.imports:
            a, b = index[module.path], index.get(imported.target, -1)
            if b >= 0 and a != b:
                links[a][b] = links[a].get(b, 0) + 1
                links[b][a] = links[b].get(a, 0) + 1
    size = {i: sum(code.modules[p].line_count for p in group) for i, group in alive.items()}
    directories = {i: {posixpath.dirname(p) for p in group} for i, group in alive.items()}
    version = dict.fromkeys(alive, 0)
    heap: list[tuple[float, int, str, str, int, int, int, int]] = []

    def offer(a: int, b: int) -> None:
        a, b = _pair(a, b)
        affinity = links[a][b] / (len(alive[a]) * len(alive[b]))
        if directories[a] & directories[b]:
            affinity *= 2  # a package's modules belong together
        entry = (-affinity, size[a] + size[b], alive[a][0], alive[b][0])
        heapq.heappush(heap, (*entry, a, b, version[a], version[b]))

    for a in alive:
        for b in links[a]:
            if a < b:
                offer(a, b)
    while len(alive) > limit:
        a, b = _coupled(heap, alive, version) or _smallest(alive, size, directories)
        alive[a] = sorted([*alive[a], *alive.pop(b)])
        size[a] += size.pop(b)
        directories[a] |= directories.pop(b)
        version[a] += 1
        for other, count in links.pop(b).items():
            del links[other][b]
            if other != a:
                links[a][other] = links[a].get(other, 0) + count
                links[other][a] = links[a][other]
        for other in links[a]:
            offer(a, other)
    return list(alive.values())


def _coupled(
    heap: list[tuple[float, int, str, str, int, int, int, int]],
    alive: dict[int, list[str]],
    version: dict[int, int],
) -> tuple[int, int] | None:
    """The most coupled pair still standing as it was offered, if any."""
    while heap:
        *_, a, b, version_a, version_b = heapq.heappop(heap)
        if a in alive and b in alive and (version[a], version[b]) == (version_a, version_b):
            return a, b
    return None


def _smallest(
    alive: dict[int, list[str]], size: dict[int, int], directories: dict[int, set[str]]
) -> tuple[int, int]:
    """No imports left between groups: the smallest one joins the smallest of its
    directory, else the next smallest."""
    ranked = sorted(alive, key=lambda i: (size[i], alive[i][0]))
    smallest, others = ranked[0], ranked[1:]
    partner = next((i for i in others if directories[i] & directories[smallest]), others[0])
    return _pair(smallest, partner)


def _by_name(test: Module, units: list[list[str]], code: CodeMap) -> int | None:
    """The unit whose module, else whose public definition, the test is named after."""
    name = _test_subject(test.path)
    if len(name) < MIN_NAME_MATCH:
        return None
    for position, group in enumerate(units):
        for path in group:
            stem = _stem(path)
            if len(stem) >= MIN_NAME_MATCH and (stem.startswith(name) or name.startswith(stem)):
                return position
    for position, group in enumerate(units):
        for path in group:
            if any(name in d.name.lower() for d in code.modules[path].public_definitions):
                return position
    return None


def _most_imported(test: Module, owner: dict[str, int]) -> int | None:
    """The unit of the files `test` imports the most names from."""
    counts: dict[int, int] = {}
    for imported in test.imports:
        if imported.target in owner:
            unit = owner[imported.target]
            counts[unit] = counts.get(unit, 0) + max(1, len(imported.names))
    if not counts:
        return None
    return min(counts, key=lambda unit: (-counts[unit], unit))


def _main_first(group: list[str], code: CodeMap) -> list[str]:
    """The group's most imported module first (what the others are built around),
    then the most defining, then by path."""
    main = min(
        group,
        key=lambda p: (-len(code.importers_of(p)), -len(code.modules[p].definitions), p),
    )
    return [main, *(p for p in sorted(group) if p != main)]


def _test_subject(path: str) -> str:
    stem = _stem(path)
    return stem.removeprefix("test_").removesuffix("_test").removeprefix("test")


def _stem(path: str) -> str:
    """`pkg/queue.py` -> `queue`; `pkg/__init__.py` -> `pkg`."""
    module = path.removesuffix(".py").removesuffix("/__init__")
    return posixpath.basename(module).lower()


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)
