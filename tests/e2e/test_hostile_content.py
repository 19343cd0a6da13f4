"""A hostile repository analysed end to end: what it smuggles into its file
names and docstrings (HTML, script links, Mermaid clicks, terminal escapes,
bidi overrides, newlines in names) never reaches the published course, the
AnalysisJob's status, its Events or the runner's log."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fondation_operator import course_store
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import EVENTS
from tests.cluster.git_server import GitServer
from tests.cluster.objects import create_aj, get_aj, wait_phase
from tests.cluster.operator_process import OperatorProcess
from tests.cluster.process_kubelet import ProcessKubelet
from tests.e2e.conftest import SAMPLE_REPO

pytestmark = pytest.mark.cluster

HOSTILE_DOCSTRING = (
    '"""Dispatches jobs. <script>fetch(document.cookie)</script>\n\n'
    "Read [the docs](javascript:alert(1)) or ![logo](data:image/svg+xml,<svg onload=alert(1)>).\n"
    '<img src=x onerror=alert(1)> <iframe src="https://evil.example"></iframe>\n'
    "\x1b[2J\x1b[31mThe terminal is mine now\x1b[0m and \u202etxet desrever\n"
    '"""\n'
)
FORBIDDEN = ("<script", "<img", "<iframe", "javascript:", "data:image", "onload=")
CONTROLS = ("\x1b", "\x00", "\u202e", "\u2066")


def _prose(markdown: str) -> str:
    """What a Markdown renderer interprets: code blocks and spans removed (it
    shows those as text, whatever they hold)."""
    without_blocks = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", markdown, flags=re.DOTALL | re.MULTILINE)
    return re.sub(r"(`+).+?\1", "", without_blocks)


def _hostile_repository(tmp_path: Path) -> Path:
    repo = tmp_path / "hostile"
    shutil.copytree(SAMPLE_REPO, repo)
    for module in (repo / "taskq").glob("*.py"):
        module.write_text(HOSTILE_DOCSTRING + module.read_text())
    (repo / "taskq" / "evil\nname.py").write_text('"""Innocent."""\n\nVALUE = 1\n')
    (repo / "taskq" / "bidi\u202etxt.py").write_text('"""Also innocent."""\n\nOTHER = 2\n')
    (repo / "taskq" / "`](javascript:alert(1))[.py").write_text('"""Brackets."""\n\nX = 3\n')
    return repo


async def test_a_hostile_repository_yields_a_clean_course_status_and_events(
    kube: KubeClient,
    namespace: str,
    operator: OperatorProcess,
    git_server: GitServer,
    kubelet: Callable[..., ProcessKubelet],
    tmp_path: Path,
) -> None:
    git_server.publish(_hostile_repository(tmp_path), "hostile")
    node = kubelet()
    await create_aj(
        kube,
        namespace,
        "hostile",
        maxChapters=6,
        source={"repository": git_server.url("hostile"), "ref": "main"},
    )
    await wait_phase(kube, namespace, "hostile", "Succeeded", timeout=120)

    course = await course_store.load(kube, namespace, "hostile")
    assert any("Dispatches jobs" in d.content for d in course.documents)
    for document in course.documents:
        for text in (document.content, document.title, document.source_path):
            assert not any(bad in text for bad in CONTROLS), document.slug
        if document.kind.value == "yaml":
            assert "<" not in document.content  # JSON data, `<` escaped
            json.loads(document.content)  # still the same JSON
        else:
            for bad in FORBIDDEN:
                assert bad not in _prose(document.content), (document.slug, bad)
    for error in course.errors:
        assert not any(bad in error.path + error.message for bad in CONTROLS)

    status = json.dumps((await get_aj(kube, namespace, "hostile"))["status"])
    events = [e["message"] for e in await kube.list(EVENTS, namespace)]
    (run,) = node.runs
    for where, text in (("status", status), ("events", "\n".join(events)), ("log", run.log)):
        for bad in CONTROLS:
            assert bad not in text and json.dumps(bad)[1:-1] not in text, (where, bad)
