from __future__ import annotations

from pathlib import Path

from fondation_runner.codemap import CodeMap, is_test


def write(root: Path, files: dict[str, str]) -> list[str]:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return sorted(files)


def test_imports_resolve_to_project_files(tmp_path: Path) -> None:
    files = write(
        tmp_path,
        {
            "src/app/__init__.py": '"""The app."""\n',
            "src/app/core.py": (
                "import os\nfrom app import util\nfrom .models import Model, Other\n"
            ),
            "src/app/models.py": "class Model:\n    pass\n",
            "src/app/util.py": (
                "def helper():\n    from app.models import Model\n    return Model\n"
            ),
            "src/app/sub/deep.py": "from ..core import thing\nimport app.util as u\n",
            "scripts/run.py": "import requests\nfrom app.core import main\n",
        },
    )

    code = CodeMap.build(tmp_path, files)

    def targets(path: str) -> list[tuple[int, str, tuple[str, ...]]]:
        return [(i.line, i.target, i.names) for i in code.modules[path].imports]

    assert targets("src/app/core.py") == [
        (2, "src/app/util.py", ("util",)),
        (3, "src/app/models.py", ("Model", "Other")),
    ]
    assert targets("src/app/util.py") == [(2, "src/app/models.py", ("Model",))]  # lazy import
    assert targets("src/app/sub/deep.py") == [
        (1, "src/app/core.py", ("thing",)),
        (2, "src/app/util.py", ("app.util",)),
    ]
    assert targets("scripts/run.py") == [(2, "src/app/core.py", ("main",))]
    assert code.modules["src/app/__init__.py"].docstring == "The app."


def test_definitions_and_unparsable_files(tmp_path: Path) -> None:
    files = write(
        tmp_path,
        {
            "m.py": (
                '"""Doc."""\n\n\n@decorator\nclass A:\n    """A doc."""\n\n'
                "    def run(self):\n        pass\n\n    def _hidden(self):\n        pass\n\n\n"
                "async def go():\n    pass\n\n\ndef _private():\n    pass\n"
            ),
            "bad.py": "def (:\n",
        },
    )

    code = CodeMap.build(tmp_path, files)

    assert code.unparsed == ["bad.py"]
    module = code.modules["m.py"]
    [cls, go] = module.public_definitions
    assert (cls.kind, cls.name, cls.line, cls.end_line, cls.docstring) == (
        "class",
        "A",
        5,
        12,
        "A doc.",
    )
    assert [(m.name, m.line, m.public) for m in cls.methods] == [
        ("run", 8, True),
        ("_hidden", 11, False),
    ]
    assert (go.kind, go.name, go.line) == ("function", "go", 15)
    assert module.line_count == 20


def test_uses_of_imported_names_are_found_with_their_lines(tmp_path: Path) -> None:
    files = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/queue.py": "class Queue:\n    def put(self, item, *, block=True):\n        pass\n",
            "pkg/util.py": "def helper(x, y=2):\n    return x\n",
            "app.py": (
                "import pkg.util\n"
                "from pkg import queue as q\n"
                "from pkg.queue import Queue\n"
                "\n"
                "box = Queue()\n"
                "q.Queue().put(1)\n"
                "pkg.util.helper(3)\n"
                "Queue = None  # rebinding is not a use\n"
            ),
        },
    )

    code = CodeMap.build(tmp_path, files)

    uses = [(u.line, u.target, u.name) for u in code.modules["app.py"].uses]
    assert uses == [
        (5, "pkg/queue.py", "Queue"),
        (6, "pkg/queue.py", "Queue"),
        (7, "pkg/util.py", "helper"),
    ]
    [queue] = code.modules["pkg/queue.py"].definitions
    assert queue.methods[0].signature == "self, item, *, block=True"
    assert code.modules["pkg/util.py"].definitions[0].signature == "x, y=2"
    assert code.modules["pkg/__init__.py"].statements == 0
    assert code.modules["app.py"].statements == 7


def test_tests_are_told_by_their_paths() -> None:
    verdicts = {
        "tests/helpers.py": True,
        "test/test_json/__init__.py": True,
        "pkg/test_queue.py": True,
        "pkg/queue_test.py": True,
        "conftest.py": True,
        "pkg/testing/fixtures.py": True,
        "pkg/queue.py": False,
        "pkg/contest.py": False,
        "attest.py": False,
    }
    assert {path: is_test(path) for path in verdicts} == verdicts
