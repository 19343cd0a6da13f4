"""No secret leaks: the ingest token and the Claude credential never appear in
logs, status, Events or ConfigMaps, even on the error paths of a failing run.

The run uses the claude backend: the real SDK and CLI in the runner process,
with the credential mounted from a Secret, talking to the fake Messages API,
which answers nonsense so that every step's validation fails and the run ends
Failed."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

import pytest

from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS, CONFIGMAPS, EVENTS, JOBS, PODS, SECRETS
from tests.cluster.controlplane import ControlPlane
from tests.cluster.git_server import GitServer
from tests.cluster.objects import create_aj, wait_phase
from tests.cluster.operator_process import OperatorProcess
from tests.cluster.process_kubelet import ProcessKubelet
from tests.fakes.claude_env import OfflineClaude

pytestmark = pytest.mark.cluster


async def test_token_and_credential_appear_nowhere(
    kube: KubeClient,
    namespace: str,
    operator: OperatorProcess,
    git_server: GitServer,
    kubelet: Callable[..., ProcessKubelet],
    control_plane: ControlPlane,
) -> None:
    api_key = "sk-ant-api03-" + secrets.token_urlsafe(48)
    await kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "claude-credentials"},
            "stringData": {"ANTHROPIC_API_KEY": api_key},
        },
        namespace,
    )
    async with OfflineClaude() as world:
        node = kubelet(**world.env)
        created = await create_aj(
            kube,
            namespace,
            "leaky",
            backend="claude",
            retries=0,
            maxChapters=2,
            source={"repository": git_server.url("sample"), "ref": "main"},
        )
        status = (await wait_phase(kube, namespace, "leaky", "Failed", timeout=120))["status"]
        # The credential did reach the model API, and only it.
        conversations = [r for r in world.api.requests if r.kind == "conversation"]
        assert conversations, "the CLI never called the fake API"
        assert all(r.credential_is(api_key) for r in conversations)
        assert not world.proxy.attempts
    token = operator.token_for(created["metadata"]["uid"])
    assert "failed" in status["failure"]["message"].lower()

    haystacks = {
        "operator log": operator.log_path.read_text(errors="replace"),
        "runner log": "\n".join(run.log for run in node.runs),
        "status": json.dumps(status),
        "AnalysisJob": json.dumps(await kube.get(ANALYSISJOBS, "leaky", namespace)),
        "events": json.dumps(await kube.list(EVENTS, namespace)),
        "configmaps": json.dumps(await kube.list(CONFIGMAPS, namespace)),
        "jobs": json.dumps(await kube.list(JOBS, namespace)),
        "pods": json.dumps(await kube.list(PODS, namespace)),
        "kubectl describe": control_plane.kubectl(
            "describe", "aj", "leaky", "-n", namespace
        ).stdout,
    }
    assert node.runs and "[1/6 abstractions]" in haystacks["runner log"]
    for where, text in haystacks.items():
        assert api_key not in text, f"the Claude credential leaked into the {where}"
        assert token not in text, f"the ingest token leaked into the {where}"
