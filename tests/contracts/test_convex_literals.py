"""Every status, kind and level the Python side writes to Convex is one the
TypeScript validators accept, and the reverse.

convex/lib/validators.ts lists these literals once and writes them to
contracts/convex-literals.json (`npm run literals`; a vitest test fails when
the file is stale), so this test reads the same values without Node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from fondation_contracts import fondation
from fondation_contracts.course import DocumentKind
from fondation_operator.convexbridge import models

LITERALS = Path(__file__).resolve().parents[2] / "contracts" / "convex-literals.json"


@pytest.fixture(scope="module")
def typescript() -> dict[str, Any]:
    literals: dict[str, Any] = json.loads(LITERALS.read_text())
    return literals


def test_job_statuses_in_the_same_order(typescript: dict[str, Any]) -> None:
    assert list(fondation.JOB_STATUSES) == typescript["jobStatuses"]


def test_what_a_heartbeat_may_report(typescript: dict[str, Any]) -> None:
    assert set(get_args(fondation.HeartbeatStatus)) == set(typescript["heartbeatStatuses"])


def test_a_stopped_job_is_a_terminal_one(typescript: dict[str, Any]) -> None:
    assert set(typescript["terminalStatuses"]) == fondation.STOPPED_STATUSES
    assert set(get_args(fondation.FinalStatus)) <= set(typescript["terminalStatuses"])


def test_document_kinds(typescript: dict[str, Any]) -> None:
    kinds = typescript["docKinds"]
    assert [kind.value for kind in DocumentKind] == kinds
    assert list(get_args(models.DocKind)) == kinds


def test_log_levels(typescript: dict[str, Any]) -> None:
    assert list(get_args(fondation.LogLevel)) == typescript["logLevels"]


def test_the_file_lists_what_the_validators_say() -> None:
    """A guard on the mechanism: a check against an empty file proves nothing."""
    literals = json.loads(LITERALS.read_text())
    assert all(literals[key] for key in ("jobStatuses", "heartbeatStatuses", "docKinds"))
