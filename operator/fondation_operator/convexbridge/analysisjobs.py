"""The AnalysisJob that runs one attempt at one Convex job.

Its name is derived from the Convex id and the attempt, and nothing else:
creating it again after a crash is a 409 AlreadyExists, never a second
analysis. Each attempt gets its own AnalysisJob because a finished one is
final (its status is the record of that attempt), and Convex retries a
failed job by handing out its next attempt.

A private repository's token goes in a Secret named after the AnalysisJob
and owned by it (`git_secret`), so it dies with it. The AnalysisJob must
exist first (an owner needs a uid), so it is created with the annotation
ANNOTATION_AWAITING_CREDENTIALS, which holds its runner Job back until the
Secret is written and the annotation removed: the pod never starts without
its credentials, and a crash anywhere in between repeats a create (409).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from pydantic import SecretStr

from fondation_contracts import analysisjob as aj
from fondation_operator import jobbuilder, names
from fondation_operator.convexbridge.claims import ClaimRecord
from fondation_operator.convexbridge.settings import ConvexSettings
from fondation_operator.observed import ObservedAnalysisJob

LABEL_CONVEX_JOB = "fondation.dev/convex-job"
LABEL_CONVEX_ATTEMPT = "fondation.dev/convex-attempt"
COMPONENT = "convex-bridge"
_MAX_ID_PART = 180  # the CRD caps names at 200 characters
_LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def dns_safe(job_id: str) -> str:
    """The Convex id as a DNS label part. Convex ids are lowercase alphanumerics
    already; anything else is folded and suffixed with a hash of the original,
    so two ids that differ only in case or punctuation never share a name."""
    folded = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    if folded == job_id and len(folded) <= _MAX_ID_PART:
        return folded
    return f"{folded[: _MAX_ID_PART - 11].strip('-') or 'job'}-{_digest(job_id)}"


def name_for(job_id: str, attempt: int) -> str:
    return f"{dns_safe(job_id)}-{attempt}"


def label_value(job_id: str) -> str:
    value = dns_safe(job_id)
    return value if _LABEL_VALUE.match(value) else f"job-{_digest(job_id)}"


def git_secret_name(name: str) -> str:
    """The AnalysisJob's Git credentials Secret (AnalysisJob names are <= 200)."""
    return f"{name}-git"


def build(
    record: ClaimRecord,
    repository_url: str,
    settings: ConvexSettings,
    *,
    branch: str = "",
    private: bool = False,
) -> dict[str, Any]:
    source: dict[str, Any] = {"repository": repository_url, "ref": branch or record.branch}
    if private:
        source["credentials"] = {"secretName": git_secret_name(record.name)}
    spec: dict[str, Any] = {
        "source": source,
        "language": record.language,
        "backend": settings.backend,
        # Convex counts attempts (maxAttempts) and decides on retries.
        "retries": settings.analysis_retries,
        "convex": {"jobId": record.job_id},
    }
    if settings.model:
        spec["model"] = settings.model
    if settings.timeout_seconds:
        spec["timeoutSeconds"] = settings.timeout_seconds
    metadata: dict[str, Any] = {
        "name": record.name,
        "namespace": record.namespace,
        "labels": {
            aj.LABEL_MANAGED_BY: aj.MANAGED_BY,
            aj.LABEL_COMPONENT: COMPONENT,
            LABEL_CONVEX_JOB: label_value(record.job_id),
            LABEL_CONVEX_ATTEMPT: str(record.attempt),
        },
    }
    if private:
        metadata["annotations"] = {aj.ANNOTATION_AWAITING_CREDENTIALS: "true"}
    return {"apiVersion": aj.API_VERSION, "kind": aj.KIND, "metadata": metadata, "spec": spec}


def git_secret(cr: ObservedAnalysisJob, token: SecretStr) -> dict[str, Any]:
    """The Git token Secret of the AnalysisJob `cr`, owned by it."""
    value = base64.b64encode(token.get_secret_value().encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": git_secret_name(cr.name),
            "namespace": cr.namespace,
            "labels": {
                aj.LABEL_MANAGED_BY: aj.MANAGED_BY,
                aj.LABEL_COMPONENT: COMPONENT,
                aj.LABEL_ANALYSISJOB: names.label_value(cr.name),
            },
            "ownerReferences": [jobbuilder.owner_reference(cr)],
        },
        "data": {aj.GIT_TOKEN_KEY: value},
    }
