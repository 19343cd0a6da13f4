"""CONVEX_* configuration: off without CONVEX_URL, every mistake named at start,
the deploy key from a variable or a mounted file and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

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
    assert settings.deploy_key == SecretStr(KEY)
    assert settings.poll_interval_s == 1.0
    assert settings.lease_ms == 300_000
    assert settings.heartbeat_interval_s == pytest.approx(100.0)
    assert settings.namespace == "fondation-system"
    assert settings.claims_namespace == "fondation-system"
    assert settings.worker_id == "fondation-operator/fondation-system/fondation-system"
    # Fondation's own functions (DESIGN section 6).
    assert settings.functions.claim_one == "queue:claimOne"
    assert settings.functions.heartbeat == "queue:heartbeat"
    assert settings.functions.complete == "queue:complete"
    assert settings.functions.retry_or_fail == "queue:retryOrFail"
    assert settings.functions.get_job == "jobs:getJob"
    assert settings.functions.append_log == "jobs:appendLog"
    assert settings.functions.user == "users:getUserById"
    assert settings.functions.github_token == "users:getGitHubToken"
    assert settings.functions.repository == "repositories:getByRepositoryId"
    assert settings.functions.upsert_documents == "docs:upsertFromJob"
    assert settings.default_language == "en"
    assert settings.encryption_key is None
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
    assert settings.deploy_key == SecretStr(KEY)


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


def test_the_deploy_key_is_optional_and_given_once() -> None:
    """Fondation's functions are public: its worker has no key."""
    settings = load(CONVEX_URL="https://x.convex.cloud")
    assert settings is not None
    assert settings.deploy_key is None
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
        CONVEX_FN_CLAIM_ONE="fondation/queue:claimOne",
        CONVEX_FN_HEARTBEAT="fondation/queue:heartbeat",
    )
    assert settings is not None
    assert settings.functions.claim_one == "fondation/queue:claimOne"
    assert settings.functions.heartbeat == "fondation/queue:heartbeat"
    assert settings.functions.complete == "queue:complete"


def test_fondations_worker_settings_are_read_in_their_units() -> None:
    """WORKER_ID, POLL_INTERVAL, LEASE_TIME and HEARTBEAT_INTERVAL, in milliseconds."""
    settings = load(
        CONVEX_URL="https://x.convex.cloud",
        WORKER_ID="worker-eu-1",
        POLL_INTERVAL="5000",
        LEASE_TIME="300000",
        HEARTBEAT_INTERVAL="60000",
    )
    assert settings is not None
    assert settings.worker_id == "worker-eu-1"
    assert settings.poll_interval_s == pytest.approx(5.0)
    assert settings.lease_ms == 300_000
    assert settings.heartbeat_interval_s == pytest.approx(60.0)


def test_an_old_and_a_new_name_for_one_setting_are_refused() -> None:
    with pytest.raises(ConvexConfigurationError, match="POLL_INTERVAL / CONVEX_POLL_INTERVAL"):
        load(CONVEX_URL="https://x.convex.cloud", POLL_INTERVAL="5000", CONVEX_POLL_INTERVAL="5")


def test_a_bad_old_setting_is_named_as_the_user_wrote_it() -> None:
    with pytest.raises(ConvexConfigurationError) as refused:
        load(CONVEX_URL="https://x.convex.cloud", POLL_INTERVAL="soon", LEASE_TIME="5")
    text = str(refused.value)
    assert "POLL_INTERVAL: 'soon' is not a number of milliseconds" in text
    # 5 ms is under the 10 s minimum lease: reported under the name that was set.
    assert "LEASE_TIME:" in text


def test_the_encryption_key_is_64_hex_characters_and_never_shown() -> None:
    key = "0f" * 32
    settings = load(CONVEX_URL="https://x.convex.cloud", ENCRYPTION_KEY=key)
    assert settings is not None
    assert settings.encryption_key == SecretStr(key)
    assert key not in repr(settings) + settings.model_dump_json()
    with pytest.raises(ConvexConfigurationError) as refused:
        load(CONVEX_URL="https://x.convex.cloud", ENCRYPTION_KEY="secret-but-short")
    assert "ENCRYPTION_KEY: must be 64 hexadecimal characters" in str(refused.value)
    assert "secret-but-short" not in str(refused.value)
