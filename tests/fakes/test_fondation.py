"""The fake of Fondation's functions, served by the emulator, as the bridge sees it.

What the vitest suites of tests/fakes/fondation_convex/ check function by
function, seen here through Convex's HTTP API the way a worker without the
deploy key calls it: the seed helpers, the error message the worker must
recognise, and the data surviving an outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.convex_emulator import ConvexEmulator, ConvexFunctionError, FunctionKind
from tests.fakes.fondation import FondationSeed

NOT_OWNED = "Job not found or not owned by worker"


@pytest.fixture(scope="module")
def emulator() -> Iterator[ConvexEmulator]:
    with ConvexEmulator(functions="fondation") as running:
        yield running


@pytest.fixture
def seed(emulator: ConvexEmulator) -> FondationSeed:
    return FondationSeed(emulator)


def drain(emulator: ConvexEmulator) -> None:
    """Claims away jobs other tests left pending."""
    while emulator.call("mutation", "queue:claimOne", {"workerId": "drain"}, anonymous=True):
        pass


def test_a_worker_without_the_key_runs_a_job_to_the_course(
    emulator: ConvexEmulator, seed: FondationSeed
) -> None:
    drain(emulator)
    job = seed.pending_job("acme/private", default_branch="trunk", token="enc_v1_aa:bb:cc")

    def call(kind: FunctionKind, path: str, args: dict[str, object]) -> object:
        return emulator.call(kind, path, args, anonymous=True)

    claimed = call("mutation", "queue:claimOne", {"workerId": "w1", "leaseMs": 60_000})
    assert isinstance(claimed, dict)
    assert set(claimed) == {"id", "repositoryId", "userId", "prompt", "callbackToken", "attempts"}
    assert (claimed["id"], claimed["attempts"]) == (job.job_id, 0)
    repository = call(
        "query", "repositories:getByRepositoryId", {"repositoryId": job.repository_id}
    )
    assert isinstance(repository, dict)
    assert (repository["fullName"], repository["defaultBranch"]) == ("acme/private", "trunk")
    user = call("query", "users:getUserById", {"userId": job.user_id})
    assert isinstance(user, dict)
    token = call("query", "users:getGitHubToken", {"githubId": user["githubId"]})
    assert token == "enc_v1_aa:bb:cc"

    assert call(
        "mutation",
        "queue:heartbeat",
        {
            "jobId": job.job_id,
            "workerId": "w1",
            "status": "analyzing",
            "progress": "Étape 1/6: Extraction des abstractions principales",
            "currentStep": 1,
            "totalSteps": 6,
        },
    ) == {"success": True}
    call("mutation", "jobs:appendLog", {"jobId": job.job_id, "level": "info", "msg": "step 1"})
    call(
        "mutation",
        "docs:upsertFromJob",
        {
            "jobId": job.job_id,
            "repositoryId": job.repository_id,
            "files": [
                {
                    "slug": "c1",
                    "title": "One",
                    "chapterIndex": 0,
                    "content": "# One",
                    "kind": "chapter",
                }
            ],
            "summary": {"chaptersCount": 1, "tutorialsCount": 0, "generatedAt": 0},
        },
    )
    assert not seed.shows_course(job.job_id)
    call("mutation", "queue:complete", {"jobId": job.job_id, "workerId": "w1", "docsCount": 1})

    assert seed.shows_course(job.job_id)
    row = seed.job_row(job.job_id)
    assert row["progress"] == "Étape 1/6: Extraction des abstractions principales"
    assert [d["title"] for d in seed.docs_of_repository(job.repository_id)] == ["One"]
    assert [entry["msg"] for entry in seed.logs(job.job_id)] == ["step 1"]


def test_another_worker_gets_fondations_message(
    emulator: ConvexEmulator, seed: FondationSeed
) -> None:
    drain(emulator)
    job = seed.pending_job()
    emulator.call("mutation", "queue:claimOne", {"workerId": "w1"}, anonymous=True)
    for path, extra in (
        ("queue:heartbeat", {}),
        ("queue:complete", {}),
        ("queue:retryOrFail", {"error": "e"}),
    ):
        with pytest.raises(ConvexFunctionError) as refused:
            emulator.call(
                "mutation",
                path,
                {"jobId": job.job_id, "workerId": "w2", **extra},
                anonymous=True,
            )
        assert NOT_OWNED in str(refused.value), path
        assert refused.value.code is None


def test_seed_functions_need_the_deploy_key(emulator: ConvexEmulator) -> None:
    with pytest.raises(ConvexFunctionError, match="Could not find public function for 'seed:user'"):
        emulator.call("mutation", "seed:user", {}, anonymous=True)


def test_a_missing_user_reads_as_null(emulator: ConvexEmulator, seed: FondationSeed) -> None:
    job = seed.pending_job(token="ghp_plain")
    seed.remove("users", job.user_id)
    assert emulator.call("query", "users:getUserById", {"userId": job.user_id}) is None
    assert emulator.call("query", "users:getGitHubToken", {"githubId": job.github_id}) is None


def test_the_seed_refuses_the_project_functions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="project"):
        FondationSeed(ConvexEmulator(state_dir=tmp_path))


def test_the_fake_survives_an_outage() -> None:
    with ConvexEmulator(functions="fondation") as emulator:
        seed = FondationSeed(emulator)
        job = seed.pending_job()
        emulator.call("mutation", "queue:claimOne", {"workerId": "w1"})
        before = seed.job_row(job.job_id)
        emulator.restart(hard=True)
        assert seed.job_row(job.job_id) == before
        assert emulator.call(
            "mutation", "queue:heartbeat", {"jobId": job.job_id, "workerId": "w1"}
        ) == {"success": True}
