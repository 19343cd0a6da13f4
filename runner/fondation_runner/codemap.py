"""The structure of a Python code base, read with `ast`, for the offline backend.

For every parsable `.py` file: its docstring, its top-level classes and
functions (with their lines, docstrings and methods) and the imports that
resolve to another file of the same project, with the line of the import.
Imports of the standard library or of dependencies resolve to nothing and
are left out. Files that do not parse are listed in `unparsed`.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Definition:
    kind: str
    """`class` or `function`."""
    name: str
    line: int
    end_line: int
    docstring: str
    methods: tuple[Definition, ...] = ()

    @property
    def public(self) -> bool:
        return not self.name.startswith("_")


@dataclass(frozen=True)
class Import:
    line: int
    target: str
    """Path of the imported project file."""
    names: tuple[str, ...]
    """What was imported from it (`from m import a, b`), or its module name."""


@dataclass(frozen=True)
class Module:
    path: str
    docstring: str
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    line_count: int

    @property
    def public_definitions(self) -> tuple[Definition, ...]:
        return tuple(d for d in self.definitions if d.public)


@dataclass
class CodeMap:
    root: Path
    modules: dict[str, Module] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, root: Path, files: list[str]) -> CodeMap:
        code_map = cls(root)
        python = sorted(f for f in files if f.endswith(".py"))
        index = _ModuleIndex(python, root.resolve().name)
        for path in python:
            source = (root / path).read_text(encoding="utf-8", errors="replace")
            try:
                tree = ast.parse(source, filename=path)
            except (SyntaxError, ValueError):
                code_map.unparsed.append(path)
                continue
            code_map.modules[path] = Module(
                path=path,
                docstring=ast.get_docstring(tree) or "",
                definitions=tuple(_definitions(tree)),
                imports=tuple(_imports(tree, path, index)),
                line_count=len(source.splitlines()),
            )
        return code_map

    def importers_of(self, path: str) -> list[tuple[Module, Import]]:
        return [(m, i) for m in self.modules.values() for i in m.imports if i.target == path]


def _definitions(tree: ast.Module) -> list[Definition]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = tuple(
                _function(child)
                for child in node.body
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            )
            found.append(
                Definition(
                    kind="class",
                    name=node.name,
                    line=node.lineno,
                    end_line=node.end_lineno or node.lineno,
                    docstring=ast.get_docstring(node) or "",
                    methods=methods,
                )
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(_function(node))
    return found


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Definition:
    return Definition(
        kind="function",
        name=node.name,
        line=node.lineno,
        end_line=node.end_lineno or node.lineno,
        docstring=ast.get_docstring(node) or "",
    )


def _imports(tree: ast.Module, path: str, modules: _ModuleIndex) -> list[Import]:
    """Project-internal imports, anywhere in the module (a function may import lazily)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve_absolute(alias.name, modules)
                if target and target != path:
                    found.append(Import(node.lineno, target, (alias.name,)))
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            for target, imported in _resolve_from(node, path, modules):
                if target != path:
                    found.append(Import(node.lineno, target, imported or names))
    return sorted(found, key=lambda i: (i.line, i.target))


def _resolve_from(
    node: ast.ImportFrom, path: str, modules: _ModuleIndex
) -> list[tuple[str, tuple[str, ...]]]:
    """`from X import a, b`: each of a, b may be a submodule; else X itself is the target."""
    resolve: Callable[[str], str | None]
    if node.level:
        base = posixpath.dirname(path)
        for _ in range(node.level - 1):
            base = posixpath.dirname(base)
        package = posixpath.join(base, *node.module.split(".")) if node.module else base
        resolve = modules.at
    else:
        package = (node.module or "").replace(".", "/")
        resolve = modules.named
    targets: list[tuple[str, tuple[str, ...]]] = []
    plain: list[str] = []
    for alias in node.names:
        submodule = resolve(posixpath.join(package, alias.name))
        if submodule:
            targets.append((submodule, (alias.name,)))
        else:
            plain.append(alias.name)
    if plain:
        module = resolve(package)
        if module:
            targets.append((module, tuple(plain)))
    return targets


def _resolve_absolute(dotted: str, modules: _ModuleIndex) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        found = modules.named("/".join(parts[:end]))
        if found:
            return found
    return None


class _ModuleIndex:
    """The project's Python files by module path (`pkg/mod` for `pkg/mod.py` and
    `pkg/mod/__init__.py`), to resolve imports without knowing the source roots."""

    def __init__(self, files: list[str], root_name: str) -> None:
        self.files = set(files)
        self.root_name = root_name
        self.by_suffix: dict[str, list[str]] = {}
        for file in sorted(files, key=lambda f: (len(f), f)):
            module = file.removesuffix(".py").removesuffix("/__init__")
            parts = module.split("/")
            for start in range(len(parts)):
                self.by_suffix.setdefault("/".join(parts[start:]), []).append(file)

    def at(self, module_path: str) -> str | None:
        """The file at exactly this module path (for relative imports)."""
        module_path = posixpath.normpath(module_path).removeprefix("./")
        for candidate in (f"{module_path}.py", f"{module_path}/__init__.py"):
            if candidate in self.files:
                return candidate
        return None

    def named(self, module_path: str) -> str | None:
        """The file an absolute import names, whatever the source root (`src/pkg/mod.py`
        for `pkg.mod`; the shortest path when several match). When the analysed
        directory is itself the package (`taskq/` analysed alone), `taskq.mod` is `mod`."""
        if not module_path:
            return None
        found = self.by_suffix.get(module_path)
        if not found and module_path.startswith(self.root_name + "/"):
            found = self.by_suffix.get(module_path.removeprefix(self.root_name + "/"))
        return found[0] if found else None
