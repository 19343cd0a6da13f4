"""The runner Job: its pod spec, unit-checked and then accepted for real by an
API server enforcing the restricted Pod Security Standard."""

from __future__ import annotations

from typing import Any

import pytest

from fondation_contracts import analysisjob as aj
from fondation_operator import jobbuilder, names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.settings import Settings
from tests.cluster.objects import create_aj, eventually, jobs_of, wait_phase, wait_pod
from tests.cluster.operator_process import OperatorProcess


def _cr(name: str = "demo", **spec: Any) -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": "u-1",
                "generation": 1,
                "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {"source": {"repository": "https://example.com/a/b"}, **spec},
        }
    )


def test_job_spec_follows_the_design() -> None:
    job = jobbuilder.build_job(
        _cr(timeoutSeconds=900, backend="claude"), 2, Settings(priority_class_name="batch-low")
    )
    assert job["metadata"]["name"] == "aj-demo-2"
    assert job["metadata"]["labels"][aj.LABEL_ANALYSISJOB] == "demo"
    assert job["metadata"]["labels"][aj.LABEL_ATTEMPT] == "2"
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "AnalysisJob" and owner["uid"] == "u-1" and owner["controller"]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    pod = spec["template"]["spec"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["priorityClassName"] == "batch-low"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory", "ephemeral-storage"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/workspace", "/tmp"} <= mounts
    env = {e["name"]: e for e in container["env"]}
    # Credentials come from the Secret by reference, never as a literal value.
    assert "value" not in env["ANTHROPIC_API_KEY"]
    assert env["ANTHROPIC_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_offline_backend_gets_no_credentials() -> None:
    job = jobbuilder.build_job(_cr(backend="offline"), 1, Settings())
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"] for e in container["env"]}
    assert not env & {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"}
    volumes = {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}
    assert "claude-credentials" not in volumes


def test_a_cache_claim_is_mounted_and_named_to_the_runner() -> None:
    job = jobbuilder.build_job(_cr(), 1, Settings(cache_claim_name="fondation-cache"))
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "cache"]
    assert volume["persistentVolumeClaim"]["claimName"] == "fondation-cache"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert env["FONDATION_CACHE_DIR"] == mounts["cache"]
    no_cache = jobbuilder.build_job(_cr(), 1, Settings())["spec"]["template"]["spec"]
    assert all(v["name"] != "cache" for v in no_cache["volumes"])


def test_a_git_ca_configmap_is_mounted_and_trusted_by_git() -> None:
    job = jobbuilder.build_job(_cr(), 1, Settings(git_ca_configmap="forge-ca"))
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "git-ca"]
    assert volume["configMap"]["name"] == "forge-ca"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["git-ca"]["readOnly"] is True
    assert env["GIT_SSL_CAINFO"] == f"{mounts['git-ca']['mountPath']}/ca.crt"
    plain = jobbuilder.build_job(_cr(), 1, Settings())["spec"]["template"]["spec"]
    assert "GIT_SSL_CAINFO" not in {e["name"] for e in plain["containers"][0]["env"]}
    assert all(v["name"] != "git-ca" for v in plain["volumes"])


def test_resources_from_spec_override_defaults() -> None:
    cr = _cr(resources={"requests": {"cpu": "3"}, "limits": {"memory": "9Gi"}})
    res = jobbuilder.build_job(cr, 1, Settings())["spec"]["template"]["spec"]["containers"][0][
        "resources"
    ]
    assert res["requests"]["cpu"] == "3"
    assert res["limits"]["memory"] == "9Gi"
    assert res["requests"]["memory"] == Settings().resources.memory_request


def test_long_names_stay_dns_labels() -> None:
    long = "x" * 190
    name = names.job_name(long, 3)
    assert len(name) <= 63 and name.endswith("-3")
    assert names.job_name(long, 3) == name
    assert names.job_name(long + "y", 3) != name
    assert len(jobbuilder.labels(_cr(long))[aj.LABEL_ANALYSISJOB]) <= 63


@pytest.mark.cluster
async def test_apply_creates_exactly_one_restricted_job(
    kube: KubeClient, namespace: str, operator: OperatorProcess
) -> None:
    created = await create_aj(kube, namespace, "one", backend="claude")
    await wait_phase(kube, namespace, "one", "Running")
    (job,) = await jobs_of(kube, namespace, "one")
    assert job["metadata"]["name"] == "aj-one-1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    # The namespace enforces the restricted Pod Security Standard: the pod
    # exists only because the API server accepted its spec.
    pod = await wait_pod(kube, namespace, "aj-one-1")
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not any(v["name"].startswith("kube-api-access") for v in pod["spec"]["volumes"])
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"]
    status = (await kube.get(ANALYSISJOBS, "one", namespace))["status"]
    assert status["attempt"] == 1 and status["jobName"] == "aj-one-1"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["observedGeneration"] == created["metadata"]["generation"]

    async def pod_name_recorded() -> bool:
        st = (await kube.get(ANALYSISJOBS, "one", namespace))["status"]
        return bool(st.get("podName") == pod["metadata"]["name"])

    await eventually(pod_name_recorded, what="status.podName")
    # Still exactly one Job once everything has settled.
    assert len(await jobs_of(kube, namespace, "one")) == 1
