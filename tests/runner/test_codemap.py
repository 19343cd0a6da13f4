from __future__ import annotations

from pathlib import Path

from fondation_runner.codemap import CodeMap


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
