"""The structure of a Python code base, read with `ast`, for the offline backend.

For every parsable `.py` file: its docstring, its top-level classes and
functions (with their lines, signatures, docstrings and methods), the
imports that resolve to another file of the same project, with the line of
the import, and the uses of what those imports bound (`TaskQueue(...)`,
`queue.claim`), with their lines: the call sites a course cites to show how
a unit is used. Imports of the standard library or of dependencies resolve
to nothing and are left out. Files that do not parse are listed in
`unparsed`. Which files are tests is decided here too (`is_test`), from
their paths, the way test runners find them.
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
    signature: str = ""
    """A function's parameters as written (`self, storage, retries=3`)."""

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
class Use:
    line: int
    target: str
    """Path of the project file the used name comes from."""
    name: str
    """The name used (`TaskQueue`), or `` for the module object itself."""


@dataclass(frozen=True)
class Module:
    path: str
    docstring: str
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    line_count: int
    uses: tuple[Use, ...] = ()
    statements: int = 0
    """Top-level statements besides the docstring: 0 for an empty module."""

    @property
    def is_test(self) -> bool:
        return is_test(self.path)

    @property
    def public_definitions(self) -> tuple[Definition, ...]:
        return tuple(d for d in self.definitions if d.public)


@dataclass
class CodeMap:
    root: Path
    modules: dict[str, Module] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)
    _importers: dict[str, list[tuple[Module, Import]]] | None = field(
        default=None, repr=False, compare=False
    )

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
            docstring = ast.get_docstring(tree)
            code_map.modules[path] = Module(
                path=path,
                docstring=docstring or "",
                definitions=tuple(_definitions(tree)),
                imports=tuple(_imports(tree, path, index)),
                line_count=len(source.splitlines()),
                uses=tuple(_uses(tree, path, index)),
                statements=len(tree.body) - (1 if docstring is not None else 0),
            )
        return code_map

    def importers_of(self, path: str) -> list[tuple[Module, Import]]:
        if self._importers is None:  # built once: callers ask for every module
            self._importers = {}
            for module in self.modules.values():
                for imported in module.imports:
                    self._importers.setdefault(imported.target, []).append((module, imported))
        return list(self._importers.get(path, []))


TEST_DIRECTORIES = frozenset({"test", "tests", "testing"})


def is_test(path: str) -> bool:
    """`tests/x.py`, `test_x.py`, `x_test.py` and `conftest.py` are tests."""
    *directories, name = path.split("/")
    return (
        any(d in TEST_DIRECTORIES for d in directories)
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


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
        signature=" ".join(ast.unparse(node.args).split()),
    )


def _uses(tree: ast.Module, path: str, modules: _ModuleIndex) -> list[Use]:
    """Where the names bound by project-internal imports are used, outside the imports:
    `Name` for `from m import Name`, `alias.attr` for a module bound to `alias`."""
    bound: dict[str, tuple[str, str]] = {}
    """Local name -> (project file, imported name, or `` for the module itself)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = modules.named(alias.name.replace(".", "/"))
                if target and target != path:
                    bound[alias.asname or alias.name] = (target, "")
        elif isinstance(node, ast.ImportFrom):
            for target, names, is_module in _resolve_from(node, path, modules):
                for alias in node.names:
                    if target != path and alias.name in names:
                        bound[alias.asname or alias.name] = (
                            target,
                            "" if is_module else alias.name,
                        )
    if not bound:
        return []
    found: set[Use] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                continue
            parts = dotted.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                head = ".".join(parts[:cut])
                if head in bound and not bound[head][1]:
                    found.add(Use(node.lineno, bound[head][0], parts[cut]))
                    break
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in bound
            and bound[node.id][1]
        ):
            found.add(Use(node.lineno, bound[node.id][0], bound[node.id][1]))
    return sorted(found, key=lambda u: (u.line, u.target, u.name))


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of attributes on a name; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


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
            for target, imported, _ in _resolve_from(node, path, modules):
                if target != path:
                    found.append(Import(node.lineno, target, imported or names))
    return sorted(found, key=lambda i: (i.line, i.target))


def _resolve_from(
    node: ast.ImportFrom, path: str, modules: _ModuleIndex
) -> list[tuple[str, tuple[str, ...], bool]]:
    """`from X import a, b`: each of a, b may be a submodule; else X itself is the
    target. Each target comes with the names imported from it and whether they are
    the submodule itself."""
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
    targets: list[tuple[str, tuple[str, ...], bool]] = []
    plain: list[str] = []
    for alias in node.names:
        submodule = resolve(posixpath.join(package, alias.name))
        if submodule:
            targets.append((submodule, (alias.name,), True))
        else:
            plain.append(alias.name)
    if plain:
        module = resolve(package)
        if module:
            targets.append((module, tuple(plain), False))
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
