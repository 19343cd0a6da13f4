"""Credentials are opted in: an AnalysisJob may name as Claude credentials
only a Secret labelled `fondation.dev/credentials: "true"` or the operator's
default Secret; any other fails at once, saying which Secret, why, and how
to opt in. The operator reads the label as metadata only."""

from __future__ import annotations

import pytest

from fondation_contracts.analysisjob import LABEL_CREDENTIALS
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import EVENTS, SECRETS
from tests.cluster.objects import create_aj, eventually, jobs_of, wait_phase
from tests.cluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


async def _secret(kube: KubeClient, namespace: str, name: str, *, opted_in: bool) -> None:
    labels = {LABEL_CREDENTIALS: "true"} if opted_in else {}
    await kube.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": labels},
            "stringData": {"CLAUDE_CODE_OAUTH_TOKEN": f"sk-ant-oat01-{name}"},
        },
        namespace,
    )


async def test_only_opted_in_or_default_secrets_are_mounted(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    await _secret(kube, namespace, "finance-key", opted_in=False)
    await _secret(kube, namespace, "team-key", opted_in=True)
    await _secret(kube, namespace, "claude-credentials", opted_in=False)  # the default
    await create_aj(
        kube, namespace, "deputy", backend="claude", credentials={"secretName": "finance-key"}
    )
    await create_aj(
        kube, namespace, "ghost", backend="claude", credentials={"secretName": "nowhere"}
    )
    await create_aj(
        kube, namespace, "team", backend="claude", credentials={"secretName": "team-key"}
    )
    await create_aj(
        kube, namespace, "named-default", backend="claude",
        credentials={"secretName": "claude-credentials"},
    )  # fmt: skip
    await create_aj(kube, namespace, "implicit", backend="claude")

    failure = (await wait_phase(kube, namespace, "deputy", "Failed"))["status"]["failure"]
    assert failure["reason"] == "CredentialsNotOptedIn"
    message = failure["message"]
    assert message.startswith("spec.credentials.secretName: Secret 'finance-key'")
    assert f"kubectl label secret finance-key -n {namespace} {LABEL_CREDENTIALS}=true" in message
    assert "sk-ant" not in message
    failure = (await wait_phase(kube, namespace, "ghost", "Failed"))["status"]["failure"]
    assert failure["reason"] == "CredentialsNotFound" and "'nowhere'" in failure["message"]
    assert await jobs_of(kube, namespace, "deputy") == []

    for name, secret in (
        ("team", "team-key"),
        ("named-default", "claude-credentials"),
        ("implicit", "claude-credentials"),
    ):
        await wait_phase(kube, namespace, name, "Running")
        (job,) = await jobs_of(kube, namespace, name)
        volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert volumes["claude-credentials"]["secret"]["secretName"] == secret

    async def event() -> bool:
        items = await kube.list(EVENTS, namespace, field_selector="involvedObject.name=deputy")
        return any(e["reason"] == "CredentialsNotOptedIn" for e in items)

    await eventually(event, what="a CredentialsNotOptedIn Event")
