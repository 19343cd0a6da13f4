"""images/requirements/*.txt, the images' pinned wheels: they must still
satisfy pyproject.toml (a dependency bumped without `images/install.sh --lock`
fails here, not in a pod), and pin each wheel by its sha256."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+) --hash=sha256:[0-9a-f]{64}$")


def pins(flavour: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "images/requirements" / f"{flavour}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"{flavour}.txt: not `name==version --hash=sha256:<hex>`: {line}"
        out[canonicalize_name(match["name"])] = match["version"]
    return out


def dependencies(flavour: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    if flavour == "runner":
        deps += project["optional-dependencies"]["claude"]
    return deps


@pytest.mark.parametrize("flavour", ["operator", "runner"])
def test_pinned_wheels_satisfy_pyproject(flavour: str) -> None:
    pinned = pins(flavour)
    for dep in dependencies(flavour):
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{flavour}.txt does not pin {req.name} (pyproject: {dep})"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"{flavour}.txt pins {req.name}=={pinned[name]}, pyproject.toml wants {dep}: "
            "run images/install.sh --lock"
        )


def test_the_operator_shares_the_runners_versions() -> None:
    runner, operator = pins("runner"), pins("operator")
    assert {name: runner.get(name) for name in operator} == operator
    assert "claude-agent-sdk" in runner and "claude-agent-sdk" not in operator
