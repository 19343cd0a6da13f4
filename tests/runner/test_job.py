from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fondation_runner.job import RunnerJob


def test_the_operators_environment_describes_the_job() -> None:
    env = {
        "FONDATION_REPOSITORY": "https://github.com/o/r.git",
        "FONDATION_REF": "v2",
        "FONDATION_SUB_PATH": "",
        "FONDATION_LANGUAGE": "fr",
        "FONDATION_MAX_CHAPTERS": "7",
        "FONDATION_BACKEND": "offline",
        "FONDATION_WORKSPACE": "/workspace",
        "FONDATION_NAMESPACE": "team-a",
        "FONDATION_ANALYSIS": "course-1",
        "FONDATION_ATTEMPT": "2",
        "UNRELATED": "x",
    }

    job = RunnerJob.from_sources(env, {"max_chapters": None, "ref": ""})

    assert job.repository == "https://github.com/o/r.git"
    assert (job.ref, job.sub_path, job.language, job.max_chapters) == ("v2", "", "fr", 7)
    assert (job.namespace, job.analysis, job.attempt, job.backend) == (
        "team-a",
        "course-1",
        2,
        "offline",
    )
    assert job.clone_dir == Path("/workspace/repository")
    assert job.cache_dir is None


def test_flags_override_the_environment() -> None:
    job = RunnerJob.from_sources(
        {"FONDATION_REPOSITORY": "a", "FONDATION_MAX_CHAPTERS": "7"},
        {"repository": "b", "max_chapters": 3},
    )
    assert (job.repository, job.max_chapters) == ("b", 3)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FONDATION_REPOSITORY": "r", "FONDATION_MAX_CHAPTERS": "31"},
        {"FONDATION_REPOSITORY": "r", "FONDATION_BACKEND": "gpt"},
    ],
)
def test_bad_jobs_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        RunnerJob.from_sources(env, {})
