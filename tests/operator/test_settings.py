from __future__ import annotations

import pytest

from fondation_operator import settings


def test_defaults() -> None:
    s = settings.parse([], environ={})
    assert s.max_concurrent_jobs == 0
    assert s.health_port == 8081
    assert s.namespaces == []


def test_flags_override_environment() -> None:
    s = settings.parse(
        ["--max-concurrent-jobs", "3"],
        environ={"FONDATION_MAX_CONCURRENT_JOBS": "9", "FONDATION_NAMESPACES": "a, b"},
    )
    assert s.max_concurrent_jobs == 3
    assert s.namespaces == ["a", "b"]


def test_every_bad_value_is_named() -> None:
    with pytest.raises(settings.ConfigurationError) as err:
        settings.parse(
            ["--health-port", "99999"],
            environ={"FONDATION_MAX_CONCURRENT_JOBS": "lots", "FONDATION_TOLERATIONS": "[{"},
        )
    text = str(err.value)
    assert "--health-port / FONDATION_HEALTH_PORT" in text
    assert "FONDATION_MAX_CONCURRENT_JOBS" in text
    assert "FONDATION_TOLERATIONS: not valid JSON" in text


def test_resource_maxima_from_json_and_bad_quantities_named() -> None:
    s = settings.parse(
        [], environ={"FONDATION_MAX_RESOURCES": '{"cpu": "4", "ephemeral-storage": "20Gi"}'}
    )
    assert s.max_resources.cpu == "4" and s.max_resources.ephemeral_storage == "20Gi"
    assert s.max_resources.memory == "16Gi"
    with pytest.raises(settings.ConfigurationError) as err:
        settings.parse([], environ={"FONDATION_MAX_RESOURCES": '{"cpu": "lots"}'})
    assert "FONDATION_MAX_RESOURCES" in str(err.value) and "'lots'" in str(err.value)


def test_a_runner_network_policy_needs_a_name_and_a_spec() -> None:
    with pytest.raises(settings.ConfigurationError) as err:
        settings.parse([], environ={"FONDATION_RUNNER_NETWORK_POLICY": '{"spec": {}}'})
    assert "FONDATION_RUNNER_NETWORK_POLICY" in str(err.value)
    ok = settings.parse(
        [],
        environ={"FONDATION_RUNNER_NETWORK_POLICY": '{"name": "p", "spec": {"podSelector": {}}}'},
    )
    assert ok.runner_network_policy["name"] == "p"


def test_fondations_max_concurrent_jobs_is_read_too() -> None:
    """Fondation's worker setting, same unit: its one-at-a-time behaviour carries over."""
    assert settings.parse([], environ={"MAX_CONCURRENT_JOBS": "1"}).max_concurrent_jobs == 1
    with pytest.raises(settings.ConfigurationError, match="set only one"):
        settings.parse(
            [], environ={"MAX_CONCURRENT_JOBS": "1", "FONDATION_MAX_CONCURRENT_JOBS": "4"}
        )
    # A flag still wins over every variable.
    flagged = settings.parse(["--max-concurrent-jobs", "2"], environ={"MAX_CONCURRENT_JOBS": "1"})
    assert flagged.max_concurrent_jobs == 2
