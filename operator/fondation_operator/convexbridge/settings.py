"""The Convex bridge's configuration, from `CONVEX_*` environment variables.

The bridge is on exactly when `CONVEX_URL` is set. Everything is validated
once, when the operator starts, and every problem is reported at once with
the variable to fix, so a bad deployment fails at start rather than at the
first job. The deploy key is a `SecretStr` from here on: it is never part of
a repr, a log line or an error message.

Fondation's own worker settings are accepted too, in their units, so a
deployment's existing configuration carries over (FONDATION_ALIASES):
`WORKER_ID`, `POLL_INTERVAL`, `LEASE_TIME` and `HEARTBEAT_INTERVAL` (all in
milliseconds, converted here, at the edge). Setting both the old and the
new name of one setting is refused: which one wins would be a guess. The
deploy key is optional, as Fondation's functions are public.
`ENCRYPTION_KEY` (64 hex characters, Fondation's) decrypts the GitHub
tokens of private repositories.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from fondation_operator.settings import ConfigurationError

URL_ENV = "CONVEX_URL"
DEPLOY_KEY_ENV = "CONVEX_DEPLOY_KEY"
DEPLOY_KEY_FILE_ENV = "CONVEX_DEPLOY_KEY_FILE"
ENCRYPTION_KEY_ENV = "ENCRYPTION_KEY"

_FUNCTION_PATH = r"^[A-Za-z0-9_][A-Za-z0-9_/.-]*:[A-Za-z_][A-Za-z0-9_]*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class ConvexConfigurationError(ConfigurationError):
    """Raised at start with one line per offending `CONVEX_*` variable."""


class FunctionNames(BaseModel):
    """Names of the deployment's functions; the defaults are Fondation's
    (DESIGN section 6), the batched upload's are the project's convex/."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim_one: str = Field("queue:claimOne", pattern=_FUNCTION_PATH)
    heartbeat: str = Field("queue:heartbeat", pattern=_FUNCTION_PATH)
    complete: str = Field("queue:complete", pattern=_FUNCTION_PATH)
    retry_or_fail: str = Field("queue:retryOrFail", pattern=_FUNCTION_PATH)
    get_job: str = Field("jobs:getJob", pattern=_FUNCTION_PATH)
    latest_job: str = Field("jobs:getJobByRepository", pattern=_FUNCTION_PATH)
    update_status: str = Field("jobs:updateStatus", pattern=_FUNCTION_PATH)
    append_log: str = Field("jobs:appendLog", pattern=_FUNCTION_PATH)
    upsert_documents: str = Field("docs:upsertFromJob", pattern=_FUNCTION_PATH)
    put_batch: str = Field("docs:putBatch", pattern=_FUNCTION_PATH)
    commit_run: str = Field("docs:commitRun", pattern=_FUNCTION_PATH)
    repository: str = Field("repositories:getByRepositoryId", pattern=_FUNCTION_PATH)
    user: str = Field("users:getUserById", pattern=_FUNCTION_PATH)
    github_token: str = Field("users:getGitHubToken", pattern=_FUNCTION_PATH)


class ConvexSettings(BaseModel):
    """Every knob of the bridge, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    deploy_key: SecretStr | None = None
    encryption_key: SecretStr | None = None
    namespace: str = Field(
        pattern=_DNS_LABEL, description="Namespace where claimed jobs become AnalysisJobs."
    )
    worker_id: str = Field(
        min_length=1,
        max_length=200,
        description="The lease holder's name: stable across restarts of the operator.",
    )
    poll_interval_s: float = Field(1.0, gt=0, le=300)
    lease_ms: int = Field(300_000, ge=10_000, le=86_400_000)
    heartbeat_interval_s: float = Field(0.0, ge=0)
    cancel_check_interval_s: float = Field(2.0, gt=0, le=60)
    """How often a running job's row is read for a cancel from the UI."""
    request_timeout_s: float = Field(30.0, gt=0, le=600)
    backoff_max_s: float = Field(30.0, ge=0.5, le=600)
    max_claims: int = Field(1000, ge=1, le=2000)
    contract: Literal["auto", "original", "extended"] = "auto"
    backend: Literal["claude", "offline"] = "claude"
    analysis_retries: int = Field(0, ge=0, le=5)
    timeout_seconds: int = Field(0, ge=0, le=86_400)
    model: str = Field("", max_length=100, pattern=r"^([A-Za-z0-9][A-Za-z0-9._:@-]*)?$")
    default_language: str = Field("en", pattern=r"^[a-z]{2}$")
    max_log_lines: int = Field(200, ge=0, le=10_000)
    """Lines appended to a job's `jobLogs` at most (0: none)."""
    repository_url_template: str = "https://github.com/{fullName}.git"
    claims_secret: str = Field("fondation-convex-claims", pattern=_DNS_SUBDOMAIN)
    claims_namespace: str = Field(pattern=_DNS_LABEL)
    functions: FunctionNames = FunctionNames()

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", url):
            raise ValueError(
                "must be the deployment's URL, e.g. https://happy-otter-123.convex.cloud"
            )
        return url

    @field_validator("encryption_key")
    @classmethod
    def _hex_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", key.get_secret_value()):
            raise ValueError("must be 64 hexadecimal characters (a 256-bit key), as Fondation's")
        return key

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> ConvexSettings:
        lease_s = self.lease_ms / 1000
        if self.heartbeat_interval_s == 0:
            object.__setattr__(self, "heartbeat_interval_s", lease_s / 3)
        elif self.heartbeat_interval_s >= lease_s / 2:
            raise ValueError(
                f"CONVEX_HEARTBEAT_INTERVAL ({self.heartbeat_interval_s}s) must be under half "
                f"the lease ({lease_s}s), or the lease expires between two heartbeats"
            )
        if "{fullName}" not in self.repository_url_template:
            raise ValueError("CONVEX_REPOSITORY_URL_TEMPLATE must contain {fullName}")
        return self

    def __repr__(self) -> str:  # the deploy key is a SecretStr already; keep it short too
        return f"ConvexSettings(url={self.url!r}, worker_id={self.worker_id!r})"


# field -> environment variable (the deploy key and namespaces are handled apart)
_ENV: dict[str, str] = {
    "url": URL_ENV,
    "namespace": "CONVEX_NAMESPACE",
    "worker_id": "CONVEX_WORKER_ID",
    "poll_interval_s": "CONVEX_POLL_INTERVAL",
    "lease_ms": "CONVEX_LEASE_MS",
    "heartbeat_interval_s": "CONVEX_HEARTBEAT_INTERVAL",
    "cancel_check_interval_s": "CONVEX_CANCEL_CHECK_INTERVAL",
    "request_timeout_s": "CONVEX_REQUEST_TIMEOUT",
    "backoff_max_s": "CONVEX_BACKOFF_MAX",
    "max_claims": "CONVEX_MAX_CLAIMS",
    "contract": "CONVEX_CONTRACT",
    "backend": "CONVEX_BACKEND",
    "analysis_retries": "CONVEX_ANALYSIS_RETRIES",
    "timeout_seconds": "CONVEX_TIMEOUT_SECONDS",
    "model": "CONVEX_MODEL",
    "default_language": "CONVEX_DEFAULT_LANGUAGE",
    "repository_url_template": "CONVEX_REPOSITORY_URL_TEMPLATE",
    "claims_secret": "CONVEX_CLAIMS_SECRET",
    "claims_namespace": "CONVEX_CLAIMS_NAMESPACE",
    "max_log_lines": "CONVEX_MAX_LOG_LINES",
    "encryption_key": ENCRYPTION_KEY_ENV,
}


class Alias(BaseModel):
    """One of Fondation's worker settings, read as one of ours."""

    model_config = ConfigDict(frozen=True)

    old: str
    field: str
    scale: float | None = None
    """Multiply the old value by this (ms -> s); None: taken as it is."""


FONDATION_ALIASES: tuple[Alias, ...] = (
    Alias(old="WORKER_ID", field="worker_id"),
    Alias(old="POLL_INTERVAL", field="poll_interval_s", scale=0.001),
    Alias(old="LEASE_TIME", field="lease_ms", scale=1.0),
    Alias(old="HEARTBEAT_INTERVAL", field="heartbeat_interval_s", scale=0.001),
)
"""Fondation worker variable -> bridge setting; `MAX_CONCURRENT_JOBS` is the
operator's cap (fondation_operator.settings)."""


def _aliased(environ: Mapping[str, str], raw: dict[str, Any], problems: list[str]) -> None:
    """Fondation's settings into `raw`, converted to our units."""
    for alias in FONDATION_ALIASES:
        value = environ.get(alias.old, "").strip()
        if not value:
            continue
        new = _ENV[alias.field]
        if alias.field in raw:
            problems.append(f"{alias.old} / {new}: set only one of them ({new} is the new name)")
            continue
        if alias.scale is None:
            raw[alias.field] = value
            continue
        try:
            number = float(value)
        except ValueError:
            problems.append(f"{alias.old}: {value!r} is not a number of milliseconds")
            continue
        converted = number * alias.scale
        raw[alias.field] = int(converted) if alias.field.endswith("_ms") else converted


_FUNCTION_ENV: dict[str, str] = {
    name: "CONVEX_FN_" + name.upper() for name in FunctionNames.model_fields
}


def _deploy_key(env: Mapping[str, str], problems: list[str]) -> str | None:
    """The deploy key, or None: Fondation's functions are public, a key is optional."""
    inline = env.get(DEPLOY_KEY_ENV, "")
    path = env.get(DEPLOY_KEY_FILE_ENV, "")
    if inline and path:
        problems.append(f"{DEPLOY_KEY_ENV} / {DEPLOY_KEY_FILE_ENV}: set only one of them")
        return None
    if path:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            problems.append(f"{DEPLOY_KEY_FILE_ENV}: cannot read {path}: {exc.strerror}")
            return None
        if not key:
            problems.append(f"{DEPLOY_KEY_FILE_ENV}: {path} is empty")
            return None
        return key
    return inline.strip() or None


def _bridge_namespace(
    env: Mapping[str, str], operator_namespace: str, watched: Sequence[str], problems: list[str]
) -> str:
    """Where AnalysisJobs go: explicit, or the only watched namespace, or the operator's."""
    explicit = env.get("CONVEX_NAMESPACE", "")
    if explicit:
        namespace = explicit
    elif len(watched) == 1:
        namespace = watched[0]
    else:
        namespace = operator_namespace
    if watched and namespace not in watched:
        source = "CONVEX_NAMESPACE" if explicit else "the operator's namespace"
        problems.append(
            f"CONVEX_NAMESPACE: {source} {namespace!r} is not watched by the operator "
            f"({', '.join(watched)}), so its AnalysisJobs would never run"
        )
    return namespace


def from_environment(
    environ: Mapping[str, str], *, operator_namespace: str, watched_namespaces: Sequence[str]
) -> ConvexSettings | None:
    """The bridge's settings, or None when `CONVEX_URL` is unset (bridge off)."""
    if not environ.get(URL_ENV, "").strip():
        return None
    problems: list[str] = []
    raw: dict[str, Any] = {
        field: environ[name] for field, name in _ENV.items() if environ.get(name, "") != ""
    }
    _aliased(environ, raw, problems)
    raw["url"] = environ[URL_ENV].strip().rstrip("/")
    key = _deploy_key(environ, problems)
    raw["deploy_key"] = SecretStr(key) if key else None
    if "encryption_key" in raw:
        raw["encryption_key"] = SecretStr(raw["encryption_key"].strip())
    raw["namespace"] = _bridge_namespace(environ, operator_namespace, watched_namespaces, problems)
    raw.setdefault("claims_namespace", operator_namespace)
    raw.setdefault("worker_id", f"fondation-operator/{operator_namespace}/{raw['namespace']}")
    functions = {
        field: environ[name] for field, name in _FUNCTION_ENV.items() if environ.get(name, "")
    }
    raw["functions"] = functions
    settings: ConvexSettings | None = None
    try:
        settings = ConvexSettings.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_input=False):
            loc = [str(part) for part in err["loc"]]
            if loc[:1] == ["functions"] and len(loc) > 1:
                where = _FUNCTION_ENV.get(loc[1], loc[1])
            elif loc:
                where = _ENV.get(loc[0], loc[0])
                old = next((a.old for a in FONDATION_ALIASES if a.field == loc[0]), None)
                if old and environ.get(old, "").strip():
                    where = old
            else:
                where = "CONVEX_*"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
    if problems:
        raise ConvexConfigurationError(
            "invalid Convex bridge configuration:\n  " + "\n  ".join(problems)
        )
    return settings
