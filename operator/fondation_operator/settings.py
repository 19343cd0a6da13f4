"""Operator configuration: environment variables overridden by flags,
validated once at start so a bad value fails fast with the variable's name."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from fondation_operator import quantity

ENV_PREFIX = "FONDATION_"


class ConfigurationError(Exception):
    """Raised with one line per offending setting."""


class ResourceDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    ephemeral_request: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    ephemeral_limit: str = "10Gi"


class ResourceMaxima(BaseModel):
    """The most one runner may request or be limited to, whatever its
    AnalysisJob's `spec.resources` asks (FONDATION_MAX_RESOURCES, JSON with
    the Kubernetes resource names); an empty value means no maximum."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cpu: str = "8"
    memory: str = "16Gi"
    ephemeral_storage: str = Field("50Gi", alias="ephemeral-storage")

    @field_validator("cpu", "memory", "ephemeral_storage")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if value:
            quantity.parse(value)  # QuantityError is a ValueError: reported with the field
        return value


class Settings(BaseModel):
    """Every knob of the operator, with its default."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty = the whole cluster."
    )
    max_concurrent_jobs: int = Field(
        0, ge=0, description="Cluster-wide cap on unfinished Jobs; 0 = no cap."
    )
    runner_image: str = Field("fondation-runner:0.1.0", min_length=1)
    image_pull_policy: str = Field("IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    credentials_secret: str = Field(
        "claude-credentials", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    ingest_url: str = Field(
        "http://fondation-operator.fondation-system.svc:8080",
        pattern=r"^https?://[^\s]+$",
        description="URL at which runner pods reach the operator's ingest endpoint.",
    )
    ingest_port: int = Field(8080, ge=0, le=65535)
    health_port: int = Field(8081, ge=0, le=65535)
    bind_address: str = "0.0.0.0"  # noqa: S104 - a pod's probes come from the node
    ttl_seconds_after_finished: int = Field(3600, ge=0)
    priority_class_name: str = ""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    runner_service_account: str = ""
    workers: int = Field(16, ge=1, le=256, description="Concurrent reconciles.")
    resources: ResourceDefaults = ResourceDefaults()
    max_resources: ResourceMaxima = Field(
        ResourceMaxima(),
        description="Most a runner may request or be limited to, per resource (JSON).",
    )
    default_model: str = ""
    cache_claim_name: str = Field(
        "",
        description="PersistentVolumeClaim mounted in runner pods as the step cache, so a "
        "re-run on an unchanged commit makes no LLM call; empty = no shared cache.",
    )
    git_ca_configmap: str = Field(
        "",
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$",
        description="ConfigMap, in each AnalysisJob's namespace, whose `ca.crt` the runner "
        "trusts for HTTPS Git hosts (a private forge's CA); empty = the system CAs only.",
    )
    token_key: SecretStr = Field(
        SecretStr(""),
        description="Key from which each AnalysisJob's ingest token is derived (HMAC); "
        "empty = a random key per process, so tokens do not survive a restart.",
    )
    allowed_repository_hosts: list[str] = Field(
        default_factory=list,
        description="Repository hosts runners may clone from although they are IP "
        "addresses, loopback or private (names, addresses or CIDR networks, "
        "comma-separated); every other such host is refused before cloning.",
    )
    ingest_max_course_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest course a runner may report, in bytes of JSON after "
        "decompression; larger bodies are refused with 413.",
    )
    ingest_max_concurrent_uploads: int = Field(
        2,
        ge=1,
        le=64,
        description="Course uploads read and parsed at once; beyond it a runner is told to "
        "retry (503). Bounds the operator's memory: each costs up to a few times the cap.",
    )
    ingest_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection to the ingest endpoint that has not sent a request's "
        "headers this long after connecting (or after its previous answer) is closed.",
    )
    ingest_body_timeout_seconds: float = Field(
        120.0, gt=0, description="A request body must arrive whole within this time (408)."
    )
    ingest_max_connections_per_peer: int = Field(
        32, ge=1, description="Connections one address may hold open to the ingest endpoint."
    )
    runner_network_policy: dict[str, Any] = Field(
        default_factory=dict,
        description="NetworkPolicy ({name, spec}, JSON) applied in each namespace before its "
        "first runner Job, when the operator watches the whole cluster; empty = none.",
    )

    @field_validator("runner_network_policy")
    @classmethod
    def _policy(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value and not (
            isinstance(value.get("name"), str)
            and value["name"]
            and isinstance(value.get("spec"), dict)
        ):
            raise ValueError('must be {"name": "<policy name>", "spec": {NetworkPolicy spec}}')
        return value

    @field_validator("namespaces", "allowed_repository_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value


# name -> (flag, parser of the environment string)
_JSON_FIELDS = {
    "node_selector",
    "tolerations",
    "resources",
    "max_resources",
    "runner_network_policy",
}
_FONDATION_ALIASES = {"max_concurrent_jobs": "MAX_CONCURRENT_JOBS"}
"""Settings Fondation's worker reads under another name, same unit: a
deployment's existing configuration carries over (the Convex bridge's
aliases are in convexbridge/settings.py)."""


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, info in Settings.model_fields.items():
        parser.add_argument(
            _flag_name(name),
            dest=name,
            default=None,
            help=f"{info.description or name} (env {_env_name(name)})",
        )


def load(args: argparse.Namespace | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Environment first, flags override; every problem reported at once."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for name in Settings.model_fields:
        value: str | None = getattr(args, name, None) if args is not None else None
        source = _flag_name(name)
        if value is None:
            value = env.get(_env_name(name))
            source = _env_name(name)
        alias = _FONDATION_ALIASES.get(name)
        if alias and env.get(alias):
            if value is not None and source == _env_name(name):
                problems.append(
                    f"{alias} / {source}: set only one of them ({source} is the new name)"
                )
                continue
            if value is None:
                value, source = env[alias], alias
        if value is None:
            continue
        if name in _JSON_FIELDS:
            try:
                raw[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(f"{source}: not valid JSON ({exc.msg})")
                continue
        else:
            raw[name] = value
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            where = f"{_flag_name(field)} / {_env_name(field)}"
            problems.append(f"{where}: {err['msg']}")
        settings = None
    if problems:
        raise ConfigurationError("invalid operator configuration:\n  " + "\n  ".join(problems))
    assert settings is not None
    return settings


def parse(argv: Sequence[str], environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="fondation operator")
    add_arguments(parser)
    return load(parser.parse_args(list(argv)), environ)
