"""How the offline backend cuts a code base into units: one per module, merged by
import coupling past the limit, tests folded into what they test."""

from __future__ import annotations

import time
from pathlib import Path

from fondation_runner.backends.offline_units import Unit, units_of
from fondation_runner.codemap import CodeMap


def code_of(root: Path, files: dict[str, str]) -> CodeMap:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return CodeMap.build(root, sorted(files))


APP = {
    "app/__init__.py": '"""The app."""\nfrom app.core import run\n',
    "app/core.py": "from app import models, util\n\n\ndef run():\n    return models.Model()\n",
    "app/models.py": "class Model:\n    pass\n",
    "app/util.py": "def helper():\n    pass\n",
    "app/empty.py": '"""Nothing here yet."""\n',
    "tests/test_models.py": "from app.models import Model\n\n\ndef test_model():\n    Model()\n",
    "tests/test_everything.py": "from app.core import run\n\n\ndef test_run():\n    run()\n",
    "tests/helpers.py": "from app.util import helper\n",
    "tests/test_with_helpers.py": "from tests import helpers\n\n\ndef test_x():\n    pass\n",
}


def test_one_unit_per_module_with_code_and_tests_folded_in(tmp_path: Path) -> None:
    units = units_of(code_of(tmp_path, APP), limit=10)

    assert units == [
        Unit(("app/__init__.py",)),
        Unit(("app/core.py",), ("tests/test_everything.py",)),  # by what it imports
        Unit(("app/models.py",), ("tests/test_models.py",)),  # by its name
        Unit(("app/util.py",), ("tests/helpers.py", "tests/test_with_helpers.py")),
    ]  # `app/empty.py` holds only a docstring: nothing to teach


def test_past_the_limit_the_most_coupled_modules_merge_first(tmp_path: Path) -> None:
    units = units_of(code_of(tmp_path, APP), limit=2)

    # core imports models and util, __init__ imports core: core and __init__ merge
    # first (a tie, the smallest pair), then models joins them; the main module,
    # the most defined and imported, comes first.
    assert [u.modules for u in units] == [
        ("app/core.py", "app/__init__.py", "app/models.py"),
        ("app/util.py",),
    ]
    assert sorted(t for u in units for t in u.tests) == sorted(
        p for p in APP if p.startswith("tests/")
    )


def test_a_module_everyone_imports_does_not_swallow_the_others(tmp_path: Path) -> None:
    files = {
        f"pkg/m{n}.py": "from pkg.base import Base\n\n\nclass C(Base):\n    pass\n"
        for n in range(4)
    }
    files |= {
        "pkg/base.py": "class Base:\n    pass\n",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from pkg import a\n",
    }

    units = units_of(code_of(tmp_path, files), limit=5)

    assert len(units) == 5
    assert ("pkg/a.py", "pkg/b.py") in [u.modules for u in units]  # they import each other
    assert max(len(u.modules) for u in units) == 2


def test_only_tests_are_taught_as_they_are(tmp_path: Path) -> None:
    units = units_of(code_of(tmp_path, {"tests/test_a.py": "def test_a():\n    pass\n"}), limit=3)
    assert units == [Unit(("tests/test_a.py",))]


def test_the_same_code_gives_the_same_units(tmp_path: Path) -> None:
    code = code_of(tmp_path, APP)
    assert units_of(code, limit=3) == units_of(CodeMap.build(tmp_path, sorted(APP)), limit=3)


def test_a_large_code_base_is_cut_quickly(tmp_path: Path) -> None:
    """1,500 modules (the listing's cap) in 15 packages, each importing three others:
    merging stays near-linear in the imports (pairs in a heap), not cubic."""
    count = 1500
    files = {"app/__init__.py": ""}
    for n in range(count):
        imported = [(n * 7 + k * 131) % count for k in (1, 2, 3)]
        files[f"app/p{n % 15}/m{n}.py"] = (
            "".join(f"from app.p{i % 15}.m{i} import f{i}\n" for i in imported if i != n)
            + f"\n\ndef f{n}():\n    pass\n"
        )
    files |= {f"app/p{p}/__init__.py": "" for p in range(15)}
    code = code_of(tmp_path, files)

    started = time.monotonic()
    units = units_of(code, limit=10)
    elapsed = time.monotonic() - started

    assert len(units) == 10
    assert sorted(p for u in units for p in u.modules) == sorted(
        p for p in files if not p.endswith("__init__.py")
    )
    assert elapsed < 30, elapsed  # about 1 s on 2 idle cores; minutes when cubic
