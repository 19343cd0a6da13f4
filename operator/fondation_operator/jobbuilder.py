"""The one place a runner Job is built from an AnalysisJob.

The pod is built for an untrusted workload (an LLM agent reading an
untrusted repository): restricted Pod Security Standard, no service-account
token, read-only root filesystem, scratch space in emptyDirs, and only the
analyze step's credentials, mounted optionally from a Secret.

A private repository's Git credentials are mounted in an init container
alone, which clones into the shared workspace (`--clone-only`): the
analysis, where an LLM agent reads the untrusted repository, runs in a
container that cannot read them.
"""

from __future__ import annotations

from typing import Any

from fondation_contracts import analysisjob as aj
from fondation_contracts import image, ingest
from fondation_operator import names, quantity
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.settings import Settings

RUNNER_UID = image.UID  # the user the project's images are built with
TOKEN_MOUNT = "/var/run/fondation/token"
CLAUDE_CREDENTIALS_MOUNT = "/var/run/fondation/claude"
WORKSPACE = image.WORKSPACE
CACHE_MOUNT = "/var/cache/fondation"
GIT_CA_MOUNT = "/var/run/fondation/git-ca"
GIT_CA_KEY = "ca.crt"

AUTOSCALER_ANNOTATIONS = {
    # A half-done analysis is expensive: don't let scale-down evict it.
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "karpenter.sh/do-not-disrupt": "true",
}


def owner_reference(cr: ObservedAnalysisJob) -> dict[str, Any]:
    return {
        "apiVersion": aj.API_VERSION,
        "kind": aj.KIND,
        "name": cr.name,
        "uid": cr.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(cr: ObservedAnalysisJob, attempt: int | None = None) -> dict[str, str]:
    out = {
        aj.LABEL_ANALYSISJOB: names.label_value(cr.name),
        aj.LABEL_MANAGED_BY: aj.MANAGED_BY,
        "app.kubernetes.io/name": "fondation-runner",
    }
    if attempt is not None:
        out[aj.LABEL_ATTEMPT] = str(attempt)
    return out


def _resources(cr: ObservedAnalysisJob, settings: Settings) -> dict[str, dict[str, str]]:
    d = settings.resources
    req, lim = cr.spec.resources.requests, cr.spec.resources.limits
    return {
        "requests": {
            "cpu": req.cpu or d.cpu_request,
            "memory": req.memory or d.memory_request,
            "ephemeral-storage": req.ephemeral_storage or d.ephemeral_request,
        },
        "limits": {
            "cpu": lim.cpu or d.cpu_limit,
            "memory": lim.memory or d.memory_limit,
            "ephemeral-storage": lim.ephemeral_storage or d.ephemeral_limit,
        },
    }


_RESOURCE_NAMES = {"cpu": "cpu", "memory": "memory", "ephemeral-storage": "ephemeral_storage"}


def resources_over_maximum(cr: ObservedAnalysisJob, settings: Settings) -> str | None:
    """Why `spec.resources` is refused (the field and the reason), or None.

    Over the operator's maximum, or a request above its limit (which the API
    server would refuse less readably)."""
    effective = _resources(cr, settings)
    maxima = settings.max_resources
    asked = {"requests": cr.spec.resources.requests, "limits": cr.spec.resources.limits}
    for kind, values in asked.items():
        for name, attr in _RESOURCE_NAMES.items():
            value, top = getattr(values, attr), getattr(maxima, attr)
            if value and top and quantity.parse(value) > quantity.parse(top):
                return (
                    f"spec.resources.{kind}.{name}: {value} is over the operator's maximum "
                    f"of {top} per AnalysisJob (setting FONDATION_MAX_RESOURCES)"
                )
    for name in _RESOURCE_NAMES:
        request, limit = effective["requests"][name], effective["limits"][name]
        if quantity.parse(request) > quantity.parse(limit):
            return (
                f"spec.resources.requests.{name}: {request} is more than its limit {limit}"
                f" (set spec.resources.limits.{name} too)"
            )
    return None


def git_credentials_secret(cr: ObservedAnalysisJob) -> str:
    """The Secret with the repository's Git credentials; empty when public."""
    credentials = cr.spec.source.credentials
    return credentials.secret_name if credentials is not None else ""


def _env(cr: ObservedAnalysisJob, attempt: int, settings: Settings) -> list[dict[str, Any]]:
    spec = cr.spec
    plain = {
        "FONDATION_NAMESPACE": cr.namespace,
        "FONDATION_ANALYSIS": cr.name,
        "FONDATION_ATTEMPT": str(attempt),
        "FONDATION_REPOSITORY": spec.source.repository,
        "FONDATION_REF": spec.source.ref,
        "FONDATION_SUB_PATH": spec.source.sub_path,
        "FONDATION_LANGUAGE": spec.language,
        "FONDATION_MODEL": spec.model or settings.default_model,
        "FONDATION_MAX_CHAPTERS": str(spec.max_chapters),
        "FONDATION_BACKEND": spec.backend,
        "FONDATION_WORKSPACE": WORKSPACE,
        ingest.INGEST_URL_ENV: settings.ingest_url,
        ingest.TOKEN_FILE_ENV: f"{TOKEN_MOUNT}/{ingest.TOKEN_SECRET_KEY}",
        aj.ALLOWED_HOSTS_ENV: ",".join(settings.allowed_repository_hosts),
        "HOME": image.HOME,
        "TMPDIR": "/tmp",  # noqa: S108 - an emptyDir in the pod
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    if settings.cache_claim_name:
        env.append({"name": "FONDATION_CACHE_DIR", "value": CACHE_MOUNT})
    if settings.git_ca_configmap:
        # git's own variable: the CA file for https:// remotes.
        env.append({"name": "GIT_SSL_CAINFO", "value": f"{GIT_CA_MOUNT}/{GIT_CA_KEY}"})
    if spec.backend == "claude":
        secret = spec.credentials.secret_name or settings.credentials_secret
        for key in ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"):
            env.append(
                {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
                }
            )
        env.append({"name": "FONDATION_CLAUDE_CREDENTIALS_DIR", "value": CLAUDE_CREDENTIALS_MOUNT})
    return env


def build_job(cr: ObservedAnalysisJob, attempt: int, settings: Settings) -> dict[str, Any]:
    spec = cr.spec
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {
            "name": "token",
            "secret": {
                "secretName": names.token_secret_name(cr.name, attempt),
                "defaultMode": 0o440,
            },
        },
    ]
    mounts = _common_mounts()
    git_secret = git_credentials_secret(cr)
    if git_secret:
        # Read by the clone alone (runner/clone.py), never put in an environment.
        volumes.append(
            {"name": "git-credentials", "secret": {"secretName": git_secret, "defaultMode": 0o440}}
        )
    if settings.cache_claim_name:
        volumes.append(
            {"name": "cache", "persistentVolumeClaim": {"claimName": settings.cache_claim_name}}
        )
        mounts.append({"name": "cache", "mountPath": CACHE_MOUNT})
    if settings.git_ca_configmap:
        volumes.append(
            {
                "name": "git-ca",
                "configMap": {
                    "name": settings.git_ca_configmap,
                    "items": [{"key": GIT_CA_KEY, "path": GIT_CA_KEY}],
                },
            }
        )
        mounts.append({"name": "git-ca", "mountPath": GIT_CA_MOUNT, "readOnly": True})
    if spec.backend == "claude":
        secret = spec.credentials.secret_name or settings.credentials_secret
        volumes.append(
            {
                "name": "claude-credentials",
                "secret": {
                    "secretName": secret,
                    "optional": True,
                    "defaultMode": 0o440,
                    "items": [{"key": ".credentials.json", "path": ".credentials.json"}],
                },
            }
        )
        mounts.append(
            {"name": "claude-credentials", "mountPath": CLAUDE_CREDENTIALS_MOUNT, "readOnly": True}
        )

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container("runner", _env(cr, attempt, settings), mounts, cr, settings)],
        "volumes": volumes,
    }
    if git_secret:
        pod_spec["initContainers"] = [_clone_container(cr, attempt, settings)]
    if settings.runner_service_account:
        pod_spec["serviceAccountName"] = settings.runner_service_account
    if settings.priority_class_name:
        pod_spec["priorityClassName"] = settings.priority_class_name
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = list(settings.tolerations)

    job_labels = labels(cr, attempt)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.job_name(cr.name, attempt),
            "namespace": cr.namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(cr)],
        },
        "spec": {
            # The operator owns retries (one Job per attempt, counted in status).
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # An eviction or node drain is not the analysis' fault.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {
                "metadata": {
                    "labels": job_labels,
                    "annotations": {
                        **AUTOSCALER_ANNOTATIONS,
                        # Label values are capped at 63 characters; names are not.
                        "fondation.dev/analysisjob-name": cr.name,
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def dry_run_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The pod the Job controller will create, for a dry run: LimitRanges,
    pod quotas, Pod Security and pod admission policies judge it before the
    Job exists (a Job they refuse would wait for a pod forever)."""
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job["metadata"]["name"],
            "namespace": job["metadata"]["namespace"],
            "labels": {
                **template["metadata"]["labels"],
                "batch.kubernetes.io/job-name": job["metadata"]["name"],
            },
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": template["spec"],
    }


def build_network_policy(namespace: str, settings: Settings) -> dict[str, Any] | None:
    """The runner egress NetworkPolicy for `namespace` (FONDATION_RUNNER_NETWORK_POLICY).

    The chart renders it per namespace when the operator watches a list of
    namespaces; watching the whole cluster, the chart cannot know them, so
    the operator applies it in each namespace before its first runner Job."""
    policy = settings.runner_network_policy
    if not policy:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy["name"],
            "namespace": namespace,
            "labels": {aj.LABEL_MANAGED_BY: aj.MANAGED_BY},
        },
        "spec": policy["spec"],
    }


def _common_mounts() -> list[dict[str, Any]]:
    """Scratch space and the ingest token: what every container of the pod mounts."""
    return [
        {"name": "workspace", "mountPath": WORKSPACE},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        {"name": "home", "mountPath": image.HOME},
        {"name": "token", "mountPath": TOKEN_MOUNT, "readOnly": True},
    ]


def _container(
    name: str,
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    cr: ObservedAnalysisJob,
    settings: Settings,
    *args: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": settings.runner_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "fondation_runner", *args],
        "env": env,
        "resources": _resources(cr, settings),
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _clone_container(cr: ObservedAnalysisJob, attempt: int, settings: Settings) -> dict[str, Any]:
    """The init container of a private repository: the clone, with the Git
    credentials and without the Claude ones."""
    env = [e for e in _env(cr, attempt, settings) if "valueFrom" not in e]
    env.append({"name": aj.GIT_CREDENTIALS_DIR_ENV, "value": aj.GIT_CREDENTIALS_DIR})
    mounts = _common_mounts()
    mounts.append(
        {"name": "git-credentials", "mountPath": aj.GIT_CREDENTIALS_DIR, "readOnly": True}
    )
    return _container("clone", env, mounts, cr, settings, "--clone-only")


def build_token_secret(cr: ObservedAnalysisJob, attempt: int, token: str) -> dict[str, Any]:
    """The attempt's ingest token; dies with the AnalysisJob through its owner."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.token_secret_name(cr.name, attempt),
            "namespace": cr.namespace,
            "labels": labels(cr),
            "ownerReferences": [owner_reference(cr)],
        },
        "stringData": {ingest.TOKEN_SECRET_KEY: token},
    }
