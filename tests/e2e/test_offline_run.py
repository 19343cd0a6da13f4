"""A whole analysis through the cluster: AnalysisJob -> operator -> Job -> a
real runner process (as its pod) cloning over HTTPS, analysing with the
offline backend and reporting to the operator with its token -> Succeeded,
course in ConfigMaps, rebuilt by `fondation course get`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fondation_contracts.ingest import STEP_NAMES
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import CONFIGMAPS, EVENTS
from fondation_runner.parser import parse_output
from tests.cluster.controlplane import ControlPlane
from tests.cluster.git_server import GitServer
from tests.cluster.objects import create_aj, wait_phase
from tests.cluster.operator_process import OperatorProcess
from tests.cluster.process_kubelet import ProcessKubelet

pytestmark = pytest.mark.cluster


async def test_offline_analysis_ends_succeeded_with_its_course(
    kube: KubeClient,
    namespace: str,
    operator: OperatorProcess,
    git_server: GitServer,
    kubelet: Callable[..., ProcessKubelet],
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    node = kubelet()
    await create_aj(
        kube,
        namespace,
        "sample",
        maxChapters=4,
        source={"repository": git_server.url("sample"), "ref": "main"},
    )
    body = await wait_phase(kube, namespace, "sample", "Succeeded", timeout=90)
    status = body["status"]
    result = status["result"]
    assert result["commit"] == git_server.sample_commit  # type: ignore[attr-defined]
    assert result["chapters"] == 4
    assert result["partial"] is False
    assert status["progress"]["step"] == 6
    assert status["progress"]["label"] == "6/6 tutorial"

    (run,) = node.runs
    assert run.exit_code == 0
    # `kubectl logs` reads like a progress log: one line per step.
    for number, step in enumerate(STEP_NAMES, start=1):
        assert f"[{number}/6 {step}]" in run.log

    maps = await kube.list(CONFIGMAPS, namespace, label_selector="fondation.dev/content=course")
    assert sorted(m["metadata"]["name"] for m in maps) == sorted(result["resultConfigMaps"])
    assert all(m["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"] for m in maps)

    events = await kube.list(
        EVENTS,
        namespace,
        field_selector="involvedObject.name=sample,involvedObject.kind=AnalysisJob",
    )
    finished = {e["message"].split()[1] for e in events if e["reason"] == "StepFinished"}
    assert finished >= set(STEP_NAMES)

    # The course rebuilt from the cluster is the course the runner produced.
    out = tmp_path / "course"
    got = control_plane.kubectl("get", "aj", "sample", "-n", namespace, "-o", "json")
    assert json.loads(got.stdout)["status"]["phase"] == "Succeeded"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fondation_cli",
        "course",
        "get",
        "sample",
        "-n",
        namespace,
        "--out",
        str(out),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await proc.communicate()
    assert proc.returncode == 0, printed.decode()
    assert b"written under" in printed
    rebuilt = parse_output(out, analysis="sample", commit=result["commit"])
    assert not rebuilt.errors
    assert len(rebuilt.documents) == result["documents"]
    chapters = sorted((d.chapter_index, d.title) for d in rebuilt.chapters)
    assert [i for i, _ in chapters] == list(range(4))
