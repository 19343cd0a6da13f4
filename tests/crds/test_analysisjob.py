"""The API server itself refuses bad AnalysisJobs, naming the field."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import Invalid
from fondation_operator.kube.resources import ANALYSISJOBS
from tests.cluster.controlplane import ControlPlane
from tests.cluster.objects import analysisjob, eventually

pytestmark = pytest.mark.cluster

# (case id, change to the spec, field the error must name, words of the reason)
BAD_SPECS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "http-scheme",
        {"source": {"repository": "http://example.com/a/b"}},
        "spec.source.repository",
        "https URL",
    ),
    (
        "file-scheme",
        {"source": {"repository": "file:///etc/passwd"}},
        "spec.source.repository",
        "https URL",
    ),
    (
        "ssh-scheme",
        {"source": {"repository": "ssh://git@example.com/a/b"}},
        "spec.source.repository",
        "https URL",
    ),
    (
        "dotdot-url",
        {"source": {"repository": "https://example.com/a/../b"}},
        "spec.source.repository",
        "..",
    ),
    (
        "metadata-address",
        {"source": {"repository": "https://169.254.169.254/latest/meta-data"}},
        "spec.source.repository",
        "metadata",
    ),
    (
        "metadata-name",
        {"source": {"repository": "git@metadata.google.internal:a/b"}},
        "spec.source.repository",
        "metadata",
    ),
    ("empty-repository", {"source": {"repository": ""}}, "spec.source.repository", ""),
    ("missing-repository", {"source": {"ref": "main"}}, "spec.source.repository", "Required"),
    ("missing-source", {"source": None}, "spec.source", "Required"),
    (
        "shell-in-ref",
        {"source": {"repository": "https://example.com/a/b", "ref": "main;rm -rf /"}},
        "spec.source.ref",
        "should match",
    ),
    (
        "subshell-in-ref",
        {"source": {"repository": "https://example.com/a/b", "ref": "$(reboot)"}},
        "spec.source.ref",
        "should match",
    ),
    (
        "dotdot-ref",
        {"source": {"repository": "https://example.com/a/b", "ref": "a/../b"}},
        "spec.source.ref",
        "Git ref",
    ),
    (
        "option-ref",
        {"source": {"repository": "https://example.com/a/b", "ref": "-uhack"}},
        "spec.source.ref",
        "should match",
    ),
    (
        "escaping-subpath",
        {"source": {"repository": "https://example.com/a/b", "subPath": "../etc"}},
        "spec.source.subPath",
        "",
    ),
    ("unknown-language", {"language": "klingon"}, "spec.language", "supported values"),
    ("unknown-backend", {"backend": "gpt"}, "spec.backend", "supported values"),
    ("bad-model", {"model": "opus; rm"}, "spec.model", "should match"),
    ("retries-high", {"retries": 6}, "spec.retries", "less than or equal to 5"),
    ("retries-negative", {"retries": -1}, "spec.retries", "greater than or equal to 0"),
    ("chapters-zero", {"maxChapters": 0}, "spec.maxChapters", "greater than or equal to 1"),
    ("chapters-high", {"maxChapters": 31}, "spec.maxChapters", "less than or equal to 30"),
    ("timeout-low", {"timeoutSeconds": 10}, "spec.timeoutSeconds", "greater than or equal to 60"),
    ("timeout-high", {"timeoutSeconds": 100_000}, "spec.timeoutSeconds", "less than or equal"),
    (
        "secret-name",
        {"credentials": {"secretName": "Bad_Name"}},
        "spec.credentials.secretName",
        "should match",
    ),
    (
        "memory-quantity",
        {"resources": {"limits": {"memory": "lots"}}},
        "spec.resources.limits.memory",
        "should match",
    ),
    ("wrong-type", {"maxChapters": "ten"}, "spec.maxChapters", "integer"),
]


def _with(change: dict[str, Any]) -> dict[str, Any]:
    body = analysisjob("bad")
    for key, value in change.items():
        if value is None:
            body["spec"].pop(key)
        else:
            body["spec"][key] = copy.deepcopy(value)
    return body


async def _refusal(kube: KubeClient, namespace: str, body: dict[str, Any]) -> str:
    try:
        await kube.create(ANALYSISJOBS, body, namespace, strict=True)
    except Invalid as exc:
        return exc.message
    raise AssertionError(f"accepted: {body['spec']}")


async def test_bad_specs_are_refused_naming_the_field(kube: KubeClient, namespace: str) -> None:
    assert len(BAD_SPECS) >= 12
    messages = await asyncio.gather(
        *(_refusal(kube, namespace, _with(change)) for _, change, _, _ in BAD_SPECS)
    )
    for (case, _, field, words), message in zip(BAD_SPECS, messages, strict=True):
        assert field in message, f"{case}: {message}"
        assert words in message, f"{case}: {message}"


async def test_unknown_field_is_refused(kube: KubeClient, namespace: str) -> None:
    body = analysisjob("typo")
    body["spec"]["maxChapter"] = 3
    try:
        await kube.create(ANALYSISJOBS, body, namespace, strict=True)
    except Exception as exc:
        assert 'unknown field "spec.maxChapter"' in str(exc)
    else:
        raise AssertionError("an unknown field was accepted")


async def test_good_spec_gets_defaults(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(
        ANALYSISJOBS,
        {
            "apiVersion": "fondation.dev/v1alpha1",
            "kind": "AnalysisJob",
            "metadata": {"name": "ok"},
            "spec": {"source": {"repository": "git@github.com:acme/widgets.git"}},
        },
        namespace,
    )
    spec = created["spec"]
    assert spec["language"] == "en"
    assert spec["maxChapters"] == 10
    assert spec["retries"] == 1
    assert spec["timeoutSeconds"] == 3600
    assert spec["backend"] == "claude"
    assert spec["cancel"] is False
    assert spec["source"]["ref"] == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"source": {"repository": "https://example.com/other/repo", "ref": "main"}},
            "spec.source",
        ),
        ({"maxChapters": 3}, "spec.maxChapters"),
        ({"language": "fr"}, "spec.language"),
        ({"retries": 0}, "spec.retries"),
    ],
)
async def test_spec_is_immutable_after_creation(
    kube: KubeClient, namespace: str, change: dict[str, Any], field: str
) -> None:
    await kube.create(ANALYSISJOBS, analysisjob("frozen"), namespace)
    try:
        await kube.patch(ANALYSISJOBS, "frozen", {"spec": change}, namespace)
    except Invalid as exc:
        assert field in exc.message and "immutable" in exc.message, exc.message
    else:
        raise AssertionError(f"spec change {change} was accepted")


async def test_cancel_may_be_set_but_not_undone(kube: KubeClient, namespace: str) -> None:
    await kube.create(ANALYSISJOBS, analysisjob("stop"), namespace)
    patched = await kube.patch(ANALYSISJOBS, "stop", {"spec": {"cancel": True}}, namespace)
    assert patched["spec"]["cancel"] is True
    try:
        await kube.patch(ANALYSISJOBS, "stop", {"spec": {"cancel": False}}, namespace)
    except Invalid as exc:
        assert "spec.cancel" in exc.message
    else:
        raise AssertionError("cancel was undone")


async def test_kubectl_explain_describes_the_fields(control_plane: ControlPlane) -> None:
    async def explained() -> str:
        out = control_plane.kubectl("explain", "analysisjob.spec.source", check=False)
        return out.stdout if out.returncode == 0 else ""

    text = await eventually(explained, timeout=30, what="OpenAPI for analysisjobs")
    assert "repository" in text and "git@host:path" in text
    assert "default branch" in text


async def test_printer_columns_and_short_name(
    kube: KubeClient, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(ANALYSISJOBS, analysisjob("cols"), namespace)
    out = control_plane.kubectl("get", "aj", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "STEP", "REPOSITORY", "DOCUMENTS", "AGE"]
    assert "cols" in out
