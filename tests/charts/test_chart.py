"""The Helm chart (charts/fondation-operator): lint, what it renders, and a real
install, upgrade and uninstall on the test control plane.

The rendered environment is read back by the operator's own settings loaders,
so a misnamed variable or a badly encoded value fails here, not in a pod.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from fondation_contracts import image
from fondation_operator import jobbuilder, settings
from fondation_operator.convexbridge import settings as convex_settings
from fondation_operator.kube.client import KubeClient
from fondation_operator.observed import ObservedAnalysisJob
from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.objects import create_aj, jobs_of, wait_phase
from tests.cluster.operator_process import OperatorProcess

CHART = ROOT / "charts" / "fondation-operator"
CRD = ROOT / "crds" / "analysisjob.yaml"
RBAC = ROOT / "deploy" / "rbac.yaml"
BUILD = ROOT / "tests" / "cluster" / "helm" / "build.sh"
CRD_NAME = "analysisjobs.fondation.dev"

RELEASE = "fondation-operator"
NAMESPACE = "fondation-system"

Object = dict[str, Any]


class Helm:
    """The pinned helm binary, with its own config/cache/data directories."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self.home = home

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: PLW1510 - `check` is handled below, with stderr
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def values_file(self, values: Mapping[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]
        path = self.home / f"values-{digest}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        return path

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> Rendered:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if values:
            args += ["--values", str(self.values_file(values))]
        return Rendered(self.run(*args).stdout)


class Rendered:
    def __init__(self, text: str) -> None:
        self.text = text
        self.objects: list[Object] = [d for d in yaml.safe_load_all(text) if d]

    def all(self, kind: str) -> list[Object]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> Object:
        (found,) = self.all(kind)
        return found

    @cached_property
    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    @property
    def pod(self) -> Object:
        spec: Object = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Object:
        (container,) = self.pod["containers"]
        return dict(container)

    @property
    def env(self) -> dict[str, Object]:
        return {e["name"]: e for e in self.container["env"]}

    def plain_env(self) -> dict[str, str]:
        """The literal environment variables, as the process would see them."""
        out: dict[str, str] = {}
        for name, entry in self.env.items():
            if "value" in entry:
                assert isinstance(entry["value"], str), f"{name} is not a string"
                out[name] = entry["value"]
        return out


def operator_settings(rendered: Rendered, token_key: str = "k" * 64) -> settings.Settings:
    """What the operator makes of the rendered environment (the token key is a
    Secret reference, so a stand-in is given)."""
    return settings.load(environ={**rendered.plain_env(), "FONDATION_TOKEN_KEY": token_key})


def rbac_rules(kind: str, name: str) -> list[Object]:
    """The rules of one role of deploy/rbac.yaml."""
    (role,) = [
        d
        for d in yaml.safe_load_all(RBAC.read_text())
        if d and d["kind"] == kind and d["metadata"]["name"] == name
    ]
    rules: list[Object] = role["rules"]
    return rules


def observed_aj(name: str = "demo") -> ObservedAnalysisJob:
    return ObservedAnalysisJob.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "uid": "u-1",
                "generation": 1,
                "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {"source": {"repository": "https://example.com/a/b"}, "backend": "claude"},
        }
    )


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    out = subprocess.run([str(BUILD)], check=True, capture_output=True, text=True, timeout=1800)
    return Helm(Path(out.stdout.strip()), tmp_path_factory.mktemp("helm"))


NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "registry.example/fondation/operator", "tag": "1.2.3"},
    "imagePullSecrets": [{"name": "regcred"}],
    "namespaces": ["team-a", "team-b"],
    "maxConcurrentJobs": 2_000_000,
    "workers": 4,
    "credentialsSecret": "llm-credentials",
    "defaultModel": "claude-sonnet-4-5",
    "runner": {
        "image": {"repository": "registry.example/fondation/runner", "tag": "9.9.9"},
        "imagePullPolicy": "Always",
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi", "ephemeralStorage": "1Gi"},
            "limits": {"cpu": 3, "memory": "6Gi", "ephemeralStorage": "20Gi"},
        },
        "ttlSecondsAfterFinished": 1_209_600,
        "priorityClassName": "batch-low",
        "nodeSelector": {"pool": "analysis"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "analysis", "effect": "NoSchedule"}
        ],
        "serviceAccountName": "runner",
        "cacheClaimName": "fondation-cache",
    },
    "ports": {"ingest": 9090, "health": 9091},
    "service": {"ingestPort": 80, "metricsPort": 9100},
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "nodeSelector": {"pool": "system"},
    "tolerations": [{"key": "system", "operator": "Exists"}],
    "priorityClassName": "system-cluster-critical",
    "extraEnv": [{"name": "FONDATION_INGEST_MAX_COURSE_BYTES", "value": "67108864"}],
}


# ---- static checks -------------------------------------------------------------


def test_lint_strict_with_default_and_non_default_values(helm: Helm) -> None:
    for extra in ([], ["--values", str(helm.values_file(NON_DEFAULT))]):
        out = helm.run("lint", "--strict", str(CHART), *extra, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "0 chart(s) failed" in out.stdout
        assert "[ERROR]" not in out.stdout and "[WARNING]" not in out.stdout


def test_chart_crd_is_a_byte_identical_copy_of_crds_dir(helm: Helm) -> None:
    chart_crd = CHART / "crds" / "analysisjob.yaml"
    assert chart_crd.read_bytes() == CRD.read_bytes(), (
        "charts/fondation-operator/crds/analysisjob.yaml differs from crds/analysisjob.yaml: "
        "copy it over"
    )
    assert [p.name for p in (CHART / "crds").iterdir()] == ["analysisjob.yaml"]
    # Helm sees it as the chart's CRD, and never renders it as a template.
    assert helm.run("show", "crds", str(CHART)).stdout.strip() == CRD.read_text().strip()
    assert "CustomResourceDefinition" not in helm.template().kinds


def test_cluster_role_rules_are_deploy_rbac_rules(helm: Helm) -> None:
    rendered = helm.template(
        {"convex": {"url": "https://c.example", "deployKey": {"existingSecret": "k"}}}
    )
    assert rendered.one("ClusterRole")["rules"] == rbac_rules("ClusterRole", "fondation-operator")
    assert rendered.one("Role")["rules"] == rbac_rules("Role", "fondation-operator-convex-claims")
    # Each binding grants its role to the release's service account, in its namespace.
    account = rendered.one("ServiceAccount")["metadata"]["name"]
    assert rendered.pod["serviceAccountName"] == account
    for binding, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        body = rendered.one(binding)
        assert body["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role,
            "name": rendered.one(role)["metadata"]["name"],
        }
        assert body["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    assert rendered.one("Role")["metadata"]["namespace"] == NAMESPACE


def test_default_render(helm: Helm) -> None:
    rendered = helm.template()
    assert rendered.kinds == sorted(
        ["ClusterRole", "ClusterRoleBinding", "Deployment", "Secret", "Service", "ServiceAccount"]
    )
    fullname = RELEASE
    for obj in rendered.objects:
        assert obj["metadata"]["name"].startswith(fullname)
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE

    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    pod, container = rendered.pod, rendered.container
    assert container["command"] == ["fondation", "operator"]
    assert container["image"] == "fondation-operator:0.1.0"
    assert pod["automountServiceAccountToken"] is True
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "ingest": 8080,
        "metrics": 8081,
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    # The restricted Pod Security Standard (also enforced for real in the install test).
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}

    service = rendered.one("Service")
    assert service["spec"]["selector"] == selector
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("ingest", 8080, "ingest"),
        ("metrics", 8081, "metrics"),
    ]

    # The token key: a generated Secret, referenced, never a literal.
    secret = rendered.one("Secret")
    assert secret["metadata"]["name"] == f"{fullname}-token-key"
    assert len(secret["data"]["token-key"]) >= 64
    assert rendered.env["FONDATION_TOKEN_KEY"] == {
        "name": "FONDATION_TOKEN_KEY",
        "valueFrom": {"secretKeyRef": {"name": f"{fullname}-token-key", "key": "token-key"}},
    }
    assert not any(name.startswith("CONVEX_") for name in rendered.env)

    # values.yaml's defaults are the operator's own defaults, but for where
    # runner pods reach the ingest endpoint: the release's Service.
    loaded = operator_settings(rendered, token_key="key")
    expected = settings.Settings(
        ingest_url=f"http://{fullname}.{NAMESPACE}.svc:8080", token_key="key"
    )
    assert loaded.model_dump(exclude={"token_key"}) == expected.model_dump(exclude={"token_key"})


def test_non_default_values_reach_the_operator_and_its_runner_jobs(helm: Helm) -> None:
    rendered = helm.template(NON_DEFAULT, release="acme", namespace="ops")
    fullname = "acme-fondation-operator"
    assert rendered.one("Deployment")["metadata"]["name"] == fullname

    loaded = operator_settings(rendered)
    runner = NON_DEFAULT["runner"]
    assert loaded.namespaces == ["team-a", "team-b"]
    assert loaded.max_concurrent_jobs == 2_000_000
    assert rendered.env["FONDATION_MAX_CONCURRENT_JOBS"]["value"] == "2000000"
    assert loaded.workers == 4
    assert loaded.credentials_secret == "llm-credentials"
    assert loaded.default_model == "claude-sonnet-4-5"
    assert loaded.runner_image == "registry.example/fondation/runner:9.9.9"
    assert loaded.image_pull_policy == "Always"
    assert loaded.ttl_seconds_after_finished == 1_209_600
    assert loaded.priority_class_name == "batch-low"
    assert loaded.node_selector == {"pool": "analysis"}
    assert loaded.tolerations == runner["tolerations"]
    assert loaded.runner_service_account == "runner"
    assert loaded.cache_claim_name == "fondation-cache"
    assert loaded.resources == settings.ResourceDefaults(
        cpu_request="250m",
        memory_request="512Mi",
        ephemeral_request="1Gi",
        cpu_limit="3",
        memory_limit="6Gi",
        ephemeral_limit="20Gi",
    )
    assert loaded.ingest_port == 9090
    assert loaded.health_port == 9091
    assert loaded.ingest_max_course_bytes == 67108864
    # The default ingest URL follows the Service's name, namespace and port.
    assert loaded.ingest_url == f"http://{fullname}.ops.svc:80"

    # ... and the runner Job the operator builds with those settings carries them.
    job_pod = jobbuilder.build_job(observed_aj(), 1, loaded)["spec"]["template"]["spec"]
    assert job_pod["nodeSelector"] == {"pool": "analysis"}
    assert job_pod["tolerations"] == runner["tolerations"]
    assert job_pod["priorityClassName"] == "batch-low"
    (job_container,) = job_pod["containers"]
    assert job_container["image"] == "registry.example/fondation/runner:9.9.9"
    assert job_container["resources"]["limits"]["memory"] == "6Gi"

    # The operator's own pod.
    pod, container = rendered.pod, rendered.container
    assert container["image"] == "registry.example/fondation/operator:1.2.3"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [{"key": "system", "operator": "Exists"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert container["resources"] == NON_DEFAULT["resources"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "ingest": 9090,
        "metrics": 9091,
    }
    service = rendered.one("Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (80, "ingest"),
        (9100, "metrics"),
    ]


def test_an_existing_token_key_secret_is_used_and_none_is_created(helm: Helm) -> None:
    rendered = helm.template({"tokenKey": {"existingSecret": "my-key", "secretKey": "hmac"}})
    assert rendered.all("Secret") == []
    assert rendered.env["FONDATION_TOKEN_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "my-key", "key": "hmac"}
    }


def test_convex_bridge_settings_and_deploy_key_file(helm: Helm, tmp_path: Path) -> None:
    values = {
        "namespaces": ["courses"],
        "convex": {
            "url": "https://happy-otter-123.convex.cloud",
            "deployKey": {"existingSecret": "convex-deploy", "secretKey": "key"},
            "namespace": "courses",
            "workerId": "fondation-prod",
            "pollInterval": 0.5,
            "leaseMs": 120000,
            "backend": "offline",
            "analysisRetries": 2,
            "claimsSecret": "convex-claims",
        },
    }
    rendered = helm.template(values)
    env = rendered.plain_env()
    assert "CONVEX_DEPLOY_KEY" not in env  # a file, never an environment variable
    key_file = Path(env["CONVEX_DEPLOY_KEY_FILE"])
    (mount,) = [
        m for m in rendered.container["volumeMounts"] if m["mountPath"] == str(key_file.parent)
    ]
    assert mount["readOnly"] is True
    (volume,) = [v for v in rendered.pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "convex-deploy"
    assert volume["secret"]["items"] == [{"key": "key", "path": key_file.name}]
    (claims,) = [r for r in rendered.all("Role") if r["metadata"]["name"].endswith("-claims")]
    assert claims["rules"][0]["resourceNames"] == ["convex-claims"]

    # What the bridge makes of it (the key file stands in for the mounted Secret).
    local_key = tmp_path / "key"
    local_key.write_text("prod:secret-deploy-key\n")
    loaded = convex_settings.from_environment(
        {**env, "CONVEX_DEPLOY_KEY_FILE": str(local_key)},
        operator_namespace=NAMESPACE,
        watched_namespaces=["courses"],
    )
    assert loaded is not None
    assert loaded.url == "https://happy-otter-123.convex.cloud"
    assert loaded.deploy_key is not None
    assert loaded.deploy_key.get_secret_value() == "prod:secret-deploy-key"
    assert loaded.namespace == "courses"
    assert loaded.worker_id == "fondation-prod"
    assert loaded.poll_interval_s == 0.5
    assert loaded.lease_ms == 120000
    assert loaded.backend == "offline"
    assert loaded.analysis_retries == 2
    assert loaded.claims_secret == "convex-claims"
    assert loaded.claims_namespace == NAMESPACE


def test_a_fondation_deployment_needs_no_deploy_key_and_names_its_functions(
    helm: Helm,
) -> None:
    """Fondation's functions are public: no key, no key volume. Function names
    and the ENCRYPTION_KEY Secret reach the bridge."""
    values = {
        "convex": {
            "url": "https://c.example",
            "encryptionKey": {"existingSecret": "fondation-env"},
            "cancelCheckInterval": 1,
            "functions": {"claimOne": "fondation/queue:claimOne", "appendLog": ""},
        }
    }
    rendered = helm.template(values)
    env = rendered.plain_env()
    assert "CONVEX_DEPLOY_KEY_FILE" not in env
    assert not any(v["name"] == "convex-deploy-key" for v in rendered.pod["volumes"])
    assert env["CONVEX_FN_CLAIM_ONE"] == "fondation/queue:claimOne"
    assert "CONVEX_FN_APPEND_LOG" not in env  # empty: Fondation's name
    assert env["CONVEX_CANCEL_CHECK_INTERVAL"] == "1"
    (key,) = [e for e in rendered.container["env"] if e["name"] == "ENCRYPTION_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "fondation-env", "key": "ENCRYPTION_KEY"}
    loaded = convex_settings.from_environment(
        {**env, "ENCRYPTION_KEY": "ab" * 32}, operator_namespace=NAMESPACE, watched_namespaces=[]
    )
    assert loaded is not None
    assert loaded.deploy_key is None
    assert loaded.functions.claim_one == "fondation/queue:claimOne"
    assert loaded.functions.append_log == "jobs:appendLog"
    assert loaded.cancel_check_interval_s == 1.0


def test_network_policies_admit_runner_pods_to_the_ingest_port_only(helm: Helm) -> None:
    assert helm.template({"networkPolicy": {"enabled": True}}).all("NetworkPolicy")[0]
    rendered = helm.template(
        {"namespaces": ["team-a", "team-b"], "networkPolicy": {"enabled": True}}
    )
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in rendered.all("NetworkPolicy")
    }
    assert set(policies) == {
        (NAMESPACE, RELEASE),
        ("team-a", f"{RELEASE}-runner-egress"),
        ("team-b", f"{RELEASE}-runner-egress"),
    }
    runner_labels = jobbuilder.build_job(observed_aj(), 1, settings.Settings())["spec"]["template"][
        "metadata"
    ]["labels"]
    operator_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]

    operator = policies[(NAMESPACE, RELEASE)]
    assert operator["podSelector"]["matchLabels"].items() <= operator_labels.items()
    ingest, health = operator["ingress"]
    assert ingest["ports"] == [{"port": "ingest", "protocol": "TCP"}]
    (peer,) = ingest["from"]
    assert peer["namespaceSelector"] == {}
    assert peer["podSelector"]["matchLabels"].items() <= runner_labels.items()
    assert health == {"ports": [{"port": "metrics", "protocol": "TCP"}]}

    egress = policies[("team-a", f"{RELEASE}-runner-egress")]
    assert egress["policyTypes"] == ["Egress"]
    assert egress["podSelector"]["matchLabels"].items() <= runner_labels.items()
    dns, to_operator, outside = egress["egress"]
    assert "to" not in dns and {p["port"] for p in dns["ports"]} == {53}
    (operator_peer,) = to_operator["to"]
    assert operator_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": NAMESPACE
    }
    assert operator_peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert to_operator["ports"] == [{"port": 8080, "protocol": "TCP"}]
    v4, v6 = (peer["ipBlock"] for peer in outside["to"])
    assert v4["cidr"] == "0.0.0.0/0" and "169.254.0.0/16" in v4["except"]
    assert "10.0.0.0/8" in v4["except"]
    assert v6 == {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}


def test_limited_to_namespaces_the_rights_are_roles_in_those_namespaces(helm: Helm) -> None:
    rendered = helm.template({"namespaces": ["team-a", "team-b"]})
    everything = rbac_rules("ClusterRole", "fondation-operator")
    crd_rule = [r for r in everything if "customresourcedefinitions" in r["resources"]]
    assert rendered.one("ClusterRole")["rules"] == crd_rule
    roles = {r["metadata"]["namespace"]: r for r in rendered.all("Role")}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert role["rules"] == [r for r in everything if r not in crd_rule]
    account = rendered.one("ServiceAccount")["metadata"]["name"]
    bindings = {b["metadata"]["namespace"]: b for b in rendered.all("RoleBinding")}
    assert set(bindings) == {"team-a", "team-b"}
    for ns, binding in bindings.items():
        assert binding["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]


def test_watching_the_whole_cluster_the_operator_applies_the_runner_egress_policy(
    helm: Helm,
) -> None:
    whole = helm.template({"networkPolicy": {"enabled": True}})
    listed = helm.template({"namespaces": ["team-a"], "networkPolicy": {"enabled": True}})
    (per_namespace,) = [
        p for p in listed.all("NetworkPolicy") if p["metadata"]["name"].endswith("-runner-egress")
    ]
    assert [p["metadata"]["name"] for p in whole.all("NetworkPolicy")] == [RELEASE]
    policy = operator_settings(whole).runner_network_policy
    assert policy == {"name": per_namespace["metadata"]["name"], "spec": per_namespace["spec"]}
    built = jobbuilder.build_network_policy("team-z", operator_settings(whole))
    assert built is not None and built["metadata"]["namespace"] == "team-z"
    assert {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "patch"],
    } in whole.one("ClusterRole")["rules"]
    # Listed namespaces get the policy from the chart; the operator applies none.
    assert operator_settings(listed).runner_network_policy == {}
    assert operator_settings(helm.template()).runner_network_policy == {}


# ---- on the test control plane --------------------------------------------------


def _get(cp: ControlPlane, *args: str) -> Object | None:
    out = cp.kubectl("get", *args, "-o", "json", check=False)
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    body: Object = json.loads(out.stdout)
    return body


def operator_pod(deployment: Object) -> Object:
    """The pod the Deployment would create, for a server-side dry run."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-dry-run", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }


@pytest.mark.cluster
def test_install_upgrade_uninstall(helm: Helm, control_plane: ControlPlane, namespace: str) -> None:
    kubeconfig = str(control_plane.kubeconfig)
    release = "chart-test"
    fullname = f"{release}-fondation-operator"
    crd_before = _get(control_plane, "crd", CRD_NAME)
    assert crd_before is not None, "the control plane installs the CRD itself"

    install = helm.run(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kubeconfig",
        kubeconfig,
        "--debug",
    )
    # NOTES.txt tells where runner pods report.
    assert f"reach the operator at http://{fullname}.{namespace}.svc:8080" in install.stdout
    # The CRD already exists (server-side applied by the fixture): Helm leaves it alone.
    assert f"CRD {CRD_NAME} is already present. Skipping." in install.stderr
    crd_after = _get(control_plane, "crd", CRD_NAME)
    assert crd_after is not None
    assert crd_after["metadata"]["uid"] == crd_before["metadata"]["uid"]
    assert crd_after["metadata"]["resourceVersion"] == crd_before["metadata"]["resourceVersion"]

    namespaced = [
        ("deployment", fullname),
        ("service", fullname),
        ("serviceaccount", fullname),
        ("secret", f"{fullname}-token-key"),
    ]
    cluster_scoped = [("clusterrole", fullname), ("clusterrolebinding", fullname)]
    for kind, name in namespaced:
        assert _get(control_plane, kind, name, "-n", namespace) is not None, (kind, name)
    for kind, name in cluster_scoped:
        assert _get(control_plane, kind, name) is not None, (kind, name)
    (listed,) = json.loads(
        helm.run("list", "--namespace", namespace, "--kubeconfig", kubeconfig, "-o", "json").stdout
    )
    assert listed["status"] == "deployed" and listed["revision"] == "1"

    # The operator's pod passes the namespace's restricted Pod Security admission
    # (this control plane runs no Deployment controller and no kubelet, so the
    # pod is created from the Deployment's template, in a server-side dry run).
    deployment = _get(control_plane, "deployment", fullname, "-n", namespace)
    assert deployment is not None
    pod = operator_pod(deployment)
    dry = control_plane.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert "PodSecurity" not in dry.stderr

    # The binding gives the operator's service account the operator's rights.
    account = f"system:serviceaccount:{namespace}:{fullname}"

    def can_i(verb: str, resource: str) -> bool:
        out = control_plane.kubectl(
            "auth", "can-i", verb, resource, "-A", f"--as={account}", check=False
        )
        assert out.stdout.strip() in ("yes", "no"), out.stderr
        return out.stdout.strip() == "yes"

    assert can_i("create", "jobs.batch")
    assert can_i("watch", "analysisjobs.fondation.dev")
    assert not can_i("list", "secrets")

    def token_key() -> str:
        secret = _get(control_plane, "secret", f"{fullname}-token-key", "-n", namespace)
        assert secret is not None
        value: str = secret["data"]["token-key"]
        return value

    key = token_key()
    assert len(key) >= 64

    helm.run(
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kubeconfig",
        kubeconfig,
        "--set",
        "maxConcurrentJobs=7",
    )
    deployment = _get(control_plane, "deployment", fullname, "-n", namespace)
    assert deployment is not None
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FONDATION_MAX_CONCURRENT_JOBS"] == "7"
    assert token_key() == key, "an upgrade must keep the ingest token key"

    helm.run("uninstall", release, "--namespace", namespace, "--kubeconfig", kubeconfig, "--wait")
    for kind, name in namespaced:
        assert _get(control_plane, kind, name, "-n", namespace) is None, (kind, name)
    for kind, name in cluster_scoped:
        assert _get(control_plane, kind, name) is None, (kind, name)
    assert helm.run("list", "--namespace", namespace, "--kubeconfig", kubeconfig, "-q").stdout == ""
    # CRDs from crds/ are never deleted by Helm: AnalysisJobs outlive the release.
    crd_left = _get(control_plane, "crd", CRD_NAME)
    assert crd_left is not None and crd_left["metadata"]["uid"] == crd_before["metadata"]["uid"]


@pytest.mark.cluster
def test_every_optional_object_is_accepted_by_the_api_server(
    helm: Helm, control_plane: ControlPlane, namespace: str
) -> None:
    """NetworkPolicies, the Convex Role and the deploy-key volume, validated by a
    real API server (server-side dry run) in a namespace enforcing restricted."""
    values = {
        "namespaces": [namespace],
        "networkPolicy": {"enabled": True},
        "convex": {"url": "https://c.example", "deployKey": {"existingSecret": "convex-key"}},
        "serviceAccount": {"name": "default"},
    }
    rendered = helm.template(values, release="dry", namespace=namespace)
    assert {"NetworkPolicy", "Role", "RoleBinding"} <= set(rendered.kinds)
    assert any(v.get("secret") for v in rendered.pod["volumes"])
    namespaced = [
        o
        for o in rendered.objects
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ServiceAccount")
    ]
    out = control_plane.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        input="\n---\n".join(yaml.safe_dump(o) for o in namespaced),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("created (server dry run)") == len(namespaced)
    # The operator's pod with the deploy-key volume passes restricted admission.
    pod = operator_pod(rendered.one("Deployment"))
    dry = control_plane.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False
    )
    assert dry.returncode == 0, dry.stderr


@pytest.mark.cluster
async def test_limited_to_namespaces_the_operator_runs_on_its_roles_alone(
    helm: Helm,
    control_plane: ControlPlane,
    kube: KubeClient,
    namespace: str,
    second_namespace: str,
    tmp_path: Path,
) -> None:
    """The chart's RBAC with `namespaces` set, applied for real: the operator,
    as the release's service account, runs an AnalysisJob in its namespace,
    and may create Jobs nowhere else."""
    rendered = helm.template(
        {"namespaces": [namespace]}, release="scoped", namespace=second_namespace
    )
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    rbac = [o for o in rendered.objects if o["kind"] in kinds]
    manifest = "\n---\n".join(yaml.safe_dump(o) for o in rbac)
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    account = rendered.one("ServiceAccount")["metadata"]["name"]
    operator = OperatorProcess(
        control_plane.service_account_kubeconfig(second_namespace, account),
        tmp_path / "operator.log",
        env={"FONDATION_NAMESPACES": namespace},
    )
    try:
        operator.start()
        await create_aj(kube, namespace, "scoped")
        await wait_phase(kube, namespace, "scoped", "Running")
        assert [j["metadata"]["name"] for j in await jobs_of(kube, namespace)] == ["aj-scoped-1"]

        def can_i(verb: str, resource: str, *where: str) -> bool:
            subject = f"--as=system:serviceaccount:{second_namespace}:{account}"
            out = control_plane.kubectl(
                "auth", "can-i", verb, resource, *where, subject, check=False
            )
            assert out.stdout.strip() in ("yes", "no"), out.stderr
            return out.stdout.strip() == "yes"

        assert can_i("create", "jobs.batch", "-n", namespace)
        assert not can_i("create", "jobs.batch", "-n", second_namespace)
        assert not can_i("create", "jobs.batch", "-n", "default")
        assert not can_i("get", "secrets", "-n", "default")
        assert not can_i("list", "analysisjobs.fondation.dev", "-A")
    finally:
        operator.stop()
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest)


# ---- the project's images and values.schema.json ----------------------------------


def test_default_images_are_the_projects_images_at_the_charts_app_version(helm: Helm) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    rendered = helm.template()
    assert rendered.container["image"] == f"{image.OPERATOR_REPOSITORY}:{app_version}"
    assert rendered.container["imagePullPolicy"] == "IfNotPresent"
    loaded = operator_settings(rendered)
    assert loaded.runner_image == f"{image.RUNNER_REPOSITORY}:{app_version}"
    assert loaded.image_pull_policy == "IfNotPresent"  # imported images are never pulled
    # The user the images are built with (images/build.py) is the one the pod runs as.
    assert rendered.pod["securityContext"]["runAsUser"] == image.UID
    assert rendered.pod["securityContext"]["runAsGroup"] == image.UID


# (values, the field helm names, what it says about it)
BAD_VALUES: list[tuple[dict[str, Any], str, str]] = [
    ({"workers": 0}, "/workers", "minimum"),
    ({"maxConcurrentJobs": "ten"}, "/maxConcurrentJobs", "integer"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "Always"),
    ({"runner": {"imagePullPolicy": "sometimes"}}, "/runner/imagePullPolicy", "IfNotPresent"),
    ({"runner": {"image": {"tag": "v1 beta"}}}, "/runner/image/tag", "pattern"),
    ({"image": {"repository": ""}}, "/image/repository", "minLength"),
    ({"namespaces": ["Team_A"]}, "/namespaces/0", "pattern"),
    ({"namespaces": "team-a"}, "/namespaces", "array"),
    ({"ports": {"ingest": 70000}}, "/ports/ingest", "maximum"),
    ({"service": {"type": "Ingress"}}, "/service/type", "ClusterIP"),
    (
        {"runner": {"resources": {"limits": {"memory": "4 gigs"}}}},
        "/runner/resources/limits/memory",
        "pattern",
    ),
    ({"credentialsSecret": "Claude Credentials"}, "/credentialsSecret", "pattern"),
    ({"ingestUrl": "operator:8080"}, "/ingestUrl", "pattern"),
    ({"convex": {"url": "convex.example"}}, "/convex/url", "pattern"),
    ({"convex": {"backend": "gpt"}}, "/convex/backend", "offline"),
    (
        {"networkPolicy": {"runnerDeniedCIDRs": ["10.0.0.0"]}},
        "/networkPolicy/runnerDeniedCIDRs/0",
        "pattern",
    ),
    ({"maxConcurrentJob": 3}, "", "maxConcurrentJob"),
    ({"runner": {"imagePullSecret": "x"}}, "/runner", "imagePullSecret"),
]


@pytest.mark.parametrize(("values", "field", "reason"), BAD_VALUES)
def test_schema_refuses_bad_values_naming_the_field_and_reason(
    helm: Helm, values: dict[str, Any], field: str, reason: str
) -> None:
    for command in ("template", "lint"):
        args = [command, RELEASE, str(CHART)] if command == "template" else [command, str(CHART)]
        result = helm.run(*args, "--values", str(helm.values_file(values)), check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, f"helm {command} accepted {values}"
        assert "values don't meet the specifications of the schema" in output
        lines = [line for line in output.splitlines() if f"- at '{field}': " in line]
        assert lines, output
        assert any(reason in line for line in lines), lines


def test_schema_accepts_every_documented_value(helm: Helm) -> None:
    convex = {
        "url": "https://happy-otter-123.convex.cloud",
        "deployKey": {"existingSecret": "convex-deploy", "secretKey": "key"},
        "pollInterval": "2",
        "leaseMs": 120000,
        "contract": "extended",
        "backend": "offline",
        "defaultLanguage": "fr",
        "timeoutSeconds": 3600,
    }
    values = {
        **NON_DEFAULT,
        "convex": convex,
        "networkPolicy": {"enabled": True, "runnerDeniedCIDRs": ["10.0.0.0/8", "fc00::/7"]},
    }
    out = helm.run("lint", "--strict", str(CHART), "--values", str(helm.values_file(values)))
    assert "0 chart(s) failed" in out.stdout
