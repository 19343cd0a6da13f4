"""CONVEX_* configuration: off without CONVEX_URL, every mistake named at start,
the deploy key from a variable or a mounted file and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from fondation_operator.convexbridge.settings import (
    ConvexConfigurationError,
    ConvexSettings,
    from_environment,
)

KEY = "prod:deployment|eyJ2MiI6InNlY3JldCJ9"


def load(**env: str) -> ConvexSettings | None:
    return from_environment(env, operator_namespace="fondation-system", watched_namespaces=[])


def test_off_without_convex_url() -> None:
    assert load() is None
    assert load(CONVEX_URL="  ", CONVEX_DEPLOY_KEY=KEY) is None


def test_defaults() -> None:
    settings = load(CONVEX_URL="https://happy-otter-123.convex.cloud/", CONVEX_DEPLOY_KEY=KEY)
    assert settings is not None
    assert settings.url == "https://happy-otter-123.convex.cloud"
    assert settings.deploy_key.get_secret_value() == KEY
    assert settings.poll_interval_s == 1.0
    assert settings.lease_ms == 300_000
    assert settings.heartbeat_interval_s == pytest.approx(100.0)
    assert settings.namespace == "fondation-system"
    assert settings.claims_namespace == "fondation-system"
    assert settings.worker_id == "fondation-operator/fondation-system/fondation-system"
    assert settings.functions.claim_one == "jobs:claimOne"
    assert settings.functions.upsert_documents == "docs:upsertFromJob"
    assert settings.contract == "auto"
    assert settings.backend == "claude"
    assert settings.analysis_retries == 0


def test_the_deploy_key_never_shows() -> None:
    settings = load(CONVEX_URL="https://x.convex.cloud", CONVEX_DEPLOY_KEY=KEY)
    assert settings is not None
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.deploy_key),
    ):
        assert KEY not in text


def test_deploy_key_from_a_mounted_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    settings = load(CONVEX_URL="https://x.convex.cloud", CONVEX_DEPLOY_KEY_FILE=str(path))
    assert settings is not None
    assert settings.deploy_key.get_secret_value() == KEY


def test_every_problem_is_reported_at_once_by_variable(tmp_path: Path) -> None:
    with pytest.raises(ConvexConfigurationError) as refused:
        load(
            CONVEX_URL="ftp://x",
            CONVEX_DEPLOY_KEY_FILE=str(tmp_path / "missing"),
            CONVEX_POLL_INTERVAL="0",
            CONVEX_LEASE_MS="five minutes",
            CONVEX_BACKEND="gpt",
            CONVEX_FN_CLAIM_ONE="claimOne",
            CONVEX_NAMESPACE="Not_A_Namespace",
        )
    text = str(refused.value)
    for variable in (
        "CONVEX_URL",
        "CONVEX_DEPLOY_KEY_FILE: cannot read",
        "CONVEX_POLL_INTERVAL",
        "CONVEX_LEASE_MS",
        "CONVEX_BACKEND",
        "CONVEX_FN_CLAIM_ONE",
        "CONVEX_NAMESPACE",
    ):
        assert variable in text, variable


def test_the_deploy_key_is_required_once() -> None:
    with pytest.raises(ConvexConfigurationError, match="deploy key is required"):
        load(CONVEX_URL="https://x.convex.cloud")
    with pytest.raises(ConvexConfigurationError, match="set only one"):
        load(
            CONVEX_URL="https://x.convex.cloud",
            CONVEX_DEPLOY_KEY=KEY,
            CONVEX_DEPLOY_KEY_FILE="/var/run/key",
        )


def test_heartbeat_must_fit_in_the_lease() -> None:
    with pytest.raises(ConvexConfigurationError, match="CONVEX_HEARTBEAT_INTERVAL"):
        load(
            CONVEX_URL="https://x.convex.cloud",
            CONVEX_DEPLOY_KEY=KEY,
            CONVEX_LEASE_MS="60000",
            CONVEX_HEARTBEAT_INTERVAL="30",
        )


def test_namespace_follows_what_the_operator_watches() -> None:
    def with_watched(watched: list[str], **env: str) -> ConvexSettings | None:
        return from_environment(
            {"CONVEX_URL": "https://x.convex.cloud", "CONVEX_DEPLOY_KEY": KEY, **env},
            operator_namespace="fondation-system",
            watched_namespaces=watched,
        )

    only = with_watched(["courses"])
    assert only is not None
    assert only.namespace == "courses"
    assert only.worker_id == "fondation-operator/fondation-system/courses"
    assert only.claims_namespace == "fondation-system"
    chosen = with_watched(["a", "b"], CONVEX_NAMESPACE="b", CONVEX_WORKER_ID="cluster-eu-1")
    assert chosen is not None
    assert (chosen.namespace, chosen.worker_id) == ("b", "cluster-eu-1")
    with pytest.raises(ConvexConfigurationError, match="not watched"):
        with_watched(["a", "b"])
    with pytest.raises(ConvexConfigurationError, match="not watched"):
        with_watched(["a"], CONVEX_NAMESPACE="c")


def test_function_names_are_configurable() -> None:
    settings = load(
        CONVEX_URL="https://x.convex.cloud",
        CONVEX_DEPLOY_KEY=KEY,
        CONVEX_FN_CLAIM_ONE="queue:claimOne",
        CONVEX_FN_HEARTBEAT="queue:heartbeat",
    )
    assert settings is not None
    assert settings.functions.claim_one == "queue:claimOne"
    assert settings.functions.heartbeat == "queue:heartbeat"
    assert settings.functions.complete == "jobs:complete"
