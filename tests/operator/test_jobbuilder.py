"""The runner Job: its pod spec, unit-checked and then accepted for real by an
API server enforcing the restricted Pod Security Standard."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fondation_contracts import analysisjob as aj
from fondation_operator import jobbuilder, names
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS, NETWORKPOLICIES
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.settings import Settings
from tests.cluster.controlplane import ControlPlane
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


def test_each_attempt_mounts_its_own_token_and_gets_the_host_allow_list() -> None:
    settings = Settings(allowed_repository_hosts="git.internal, 10.0.0.0/8")  # type: ignore[arg-type]
    for attempt in (1, 2):
        job = jobbuilder.build_job(_cr(), attempt, settings)
        pod = job["spec"]["template"]["spec"]
        (token,) = [v for v in pod["volumes"] if v["name"] == "token"]
        assert token["secret"]["secretName"] == f"aj-demo-{attempt}-token"
        secret = jobbuilder.build_token_secret(_cr(), attempt, "t")
        assert secret["metadata"]["name"] == token["secret"]["secretName"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env[aj.ALLOWED_HOSTS_ENV] == "git.internal,10.0.0.0/8"
        assert env["FONDATION_ATTEMPT"] == str(attempt)


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


def test_git_credentials_are_mounted_in_the_clone_init_container_alone() -> None:
    """The analysis (an LLM agent over the untrusted repository) cannot read them."""
    source = {
        "repository": "https://example.com/a/b",
        "credentials": {"secretName": "demo-git"},
    }
    job = jobbuilder.build_job(_cr(source=source, backend="claude"), 1, Settings())
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "git-credentials"]
    assert volume["secret"]["secretName"] == "demo-git"
    (clone,) = pod["initContainers"]
    assert clone["command"][-1] == "--clone-only"
    (mount,) = [m for m in clone["volumeMounts"] if m["name"] == "git-credentials"]
    assert (mount["mountPath"], mount["readOnly"]) == (aj.GIT_CREDENTIALS_DIR, True)
    env = {e["name"]: e for e in clone["env"]}
    assert env[aj.GIT_CREDENTIALS_DIR_ENV]["value"] == aj.GIT_CREDENTIALS_DIR
    assert not any("valueFrom" in e for e in clone["env"])  # no Claude credentials
    assert {m["name"] for m in clone["volumeMounts"]} >= {"workspace", "token"}
    assert clone["securityContext"] == pod["containers"][0]["securityContext"]
    (runner,) = pod["containers"]
    assert "git-credentials" not in str(runner)
    assert aj.GIT_CREDENTIALS_DIR_ENV not in str(runner)
    public = jobbuilder.build_job(_cr(backend="offline"), 1, Settings())
    assert "initContainers" not in public["spec"]["template"]["spec"]
    assert "git-credentials" not in str(public)


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


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ({"limits": {"cpu": "64"}}, "spec.resources.limits.cpu", "maximum of 8"),
        ({"requests": {"memory": "1Ti"}}, "spec.resources.requests.memory", "maximum of 16Gi"),
        (
            {"limits": {"ephemeral-storage": "100Gi"}},
            "spec.resources.limits.ephemeral-storage",
            "maximum of 50Gi",
        ),
        ({"requests": {"cpu": "3"}}, "spec.resources.requests.cpu", "more than its limit 2"),
    ],
)
def test_resources_over_the_operators_maximum_are_refused_with_the_field(
    resources: dict[str, Any], field: str, words: str
) -> None:
    problem = jobbuilder.resources_over_maximum(_cr(resources=resources), Settings())
    assert problem is not None and problem.startswith(field + ":") and words in problem


def test_resources_within_the_maximum_pass_and_an_empty_maximum_is_none() -> None:
    fits = _cr(resources={"requests": {"cpu": "8", "memory": "16Gi"}, "limits": {"cpu": "8000m"}})
    assert jobbuilder.resources_over_maximum(_cr(), Settings()) is None
    settings = Settings.model_validate({"resources": {"memory_limit": "20Gi"}})
    assert jobbuilder.resources_over_maximum(fits, settings) is None
    unbounded = Settings.model_validate({"max_resources": {"cpu": ""}})
    huge = _cr(resources={"requests": {"cpu": "64"}, "limits": {"cpu": "64"}})
    assert jobbuilder.resources_over_maximum(huge, unbounded) is None


def test_the_dry_run_pod_is_the_jobs_pod() -> None:
    job = jobbuilder.build_job(_cr(), 1, Settings())
    pod = jobbuilder.dry_run_pod(job)
    assert pod["kind"] == "Pod" and pod["spec"] == job["spec"]["template"]["spec"]
    assert pod["metadata"]["namespace"] == "ns"
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "aj-demo-1"


def test_the_runner_network_policy_is_built_only_when_configured() -> None:
    assert jobbuilder.build_network_policy("team", Settings()) is None
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": []}
    settings = Settings(runner_network_policy={"name": "runner-egress", "spec": spec})
    policy = jobbuilder.build_network_policy("team", settings)
    assert policy is not None
    assert policy["metadata"]["namespace"] == "team"
    assert policy["metadata"]["name"] == "runner-egress" and policy["spec"] == spec


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


RUNNER_POLICY_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: fondation-operator-runner-policy}
rules:
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: fondation-operator-runner-policy}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: fondation-operator-runner-policy
subjects: [{kind: ServiceAccount, name: fondation-operator, namespace: fondation-system}]
"""


@pytest.mark.cluster
async def test_the_runner_egress_policy_is_applied_before_the_first_job(
    kube: KubeClient,
    control_plane: ControlPlane,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Watching the whole cluster, the chart hands the policy to the operator
    (rbac.yaml grants it networkpolicies then), which applies it per namespace."""
    control_plane.kubectl("apply", "-f", "-", input=RUNNER_POLICY_RBAC)
    selector = {"matchLabels": {"app.kubernetes.io/name": "fondation-runner"}}
    spec: dict[str, Any] = {
        "podSelector": selector,
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}],
    }
    try:
        operator_factory(
            FONDATION_RUNNER_NETWORK_POLICY=json.dumps({"name": "runner-egress", "spec": spec})
        )
        await create_aj(kube, namespace, "fenced")
        await wait_phase(kube, namespace, "fenced", "Running")
        policy = await kube.get(NETWORKPOLICIES, "runner-egress", namespace)
        assert policy["spec"]["policyTypes"] == ["Egress"]
        assert policy["spec"]["podSelector"] == spec["podSelector"]
        job = (await jobs_of(kube, namespace, "fenced"))[0]
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert selector["matchLabels"].items() <= labels.items()
    finally:
        control_plane.kubectl("delete", "-f", "-", "--ignore-not-found", input=RUNNER_POLICY_RBAC)
