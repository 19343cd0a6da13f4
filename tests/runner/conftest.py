from __future__ import annotations

from pathlib import Path

import pytest

from tests.runner.helpers import SAMPLE_REPO, make_git_repo


@pytest.fixture
def sample_repo() -> Path:
    return SAMPLE_REPO


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "origin")
