"""Which Secrets an AnalysisJob may use as Claude credentials.

The operator mounts the Secret named in `spec.credentials.secretName` into a
runner pod it creates. Without a check, anyone who may create AnalysisJobs
in a namespace could make the operator spend any credential of that
namespace, one they cannot read themselves (a confused deputy). So a Secret
is usable only if its owner opted in, with the label
`fondation.dev/credentials: "true"`, or if it is the operator's configured
default (FONDATION_CREDENTIALS_SECRET), which the cluster's admin chose.

Reading the label needs `get` on Secrets. The operator asks for metadata
only (PartialObjectMetadata), so no Secret's data reaches it; RBAC cannot
narrow `get` to metadata, but an operator that may create Jobs in a
namespace can already mount any Secret there, so this adds no reach.
"""

from __future__ import annotations

from fondation_contracts.analysisjob import LABEL_CREDENTIALS
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, NotFound
from fondation_operator.kube.resources import SECRETS
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.settings import Settings

FIELD = "spec.credentials.secretName"


async def check(
    client: KubeClient, cr: ObservedAnalysisJob, settings: Settings
) -> tuple[str, str] | None:
    """(reason, message) if the AnalysisJob may not use its credentials Secret, else None."""
    name = cr.spec.credentials.secret_name
    if cr.spec.backend != "claude" or not name or name == settings.credentials_secret:
        return None
    try:
        body = await client.get_metadata(SECRETS, name, cr.namespace)
    except NotFound:
        return (
            "CredentialsNotFound",
            f"{FIELD}: Secret {name!r} does not exist in namespace {cr.namespace!r}",
        )
    except ApiError as exc:
        if exc.status != 403:
            raise
        return (
            "CredentialsNotVerifiable",
            f"{FIELD}: the operator may not read the labels of Secret {name!r} in namespace "
            f"{cr.namespace!r} (its RBAC needs `get` on secrets there), so it cannot tell "
            "whether the Secret was opted in",
        )
    labels = (body.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_CREDENTIALS) == "true":
        return None
    return (
        "CredentialsNotOptedIn",
        f"{FIELD}: Secret {name!r} may not be used as Claude credentials: only a Secret "
        f'labelled {LABEL_CREDENTIALS}="true" or the operator\'s default Secret '
        f"{settings.credentials_secret!r} may. Its owner opts in with: kubectl label secret "
        f"{name} -n {cr.namespace} {LABEL_CREDENTIALS}=true",
    )
