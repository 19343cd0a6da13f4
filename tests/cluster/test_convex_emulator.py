"""The Convex emulator speaks Convex's HTTP API and survives an outage.

These tests pin the wire format the operator's Convex bridge relies on: the
request envelope of the official clients, the answers to success, function
failure and bad requests, the deploy key, and ids that stay valid across a
stop or a kill of the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster.convex_emulator import ConvexEmulator, ConvexFunctionError, FunctionSet
from tests.fakes.fondation import FondationSeed

REPO_URL = "https://example.test/acme/widgets.git"


@pytest.fixture(scope="module")
def emulator() -> Iterator[ConvexEmulator]:
    with ConvexEmulator() as running:
        yield running


def body(path: str, args: object, fmt: str = "convex_encoded_json") -> bytes:
    return json.dumps({"path": path, "args": args, "format": fmt}).encode()


def test_calls_without_the_deploy_key_are_refused(emulator: ConvexEmulator) -> None:
    call = body("jobs:claimOne", {"workerId": "w"})
    for authorization in (
        "",
        "Convex wrong-key",
        f"Bearer {emulator.deploy_key}",
        f"Convex {emulator.deploy_key}x",
    ):
        status, answer = emulator.post("mutation", call, authorization=authorization)
        assert status == 401, authorization
        assert answer["code"] == "BadAdminKey"


def test_calls_without_a_key_reach_public_functions_only(emulator: ConvexEmulator) -> None:
    # As on Convex: no Authorization header at all is an anonymous client.
    status, answer = emulator.post(
        "mutation", body("queue:claimOne", {"workerId": "anonymous"}), anonymous=True
    )
    assert (status, answer["status"]) == (200, "success")
    status, answer = emulator.post(
        "mutation", body("jobs:enqueue", {"repositoryUrl": REPO_URL}), anonymous=True
    )
    assert (status, answer["status"]) == (200, "error")
    assert answer["errorMessage"] == "Could not find public function for 'jobs:enqueue'"


def test_requests_that_are_not_understood_are_4xx(emulator: ConvexEmulator) -> None:
    assert emulator.post("mutation", b"{not json")[0] == 400
    assert emulator.post("mutation", body("jobs:claimOne", {}, fmt="yaml"))[0] == 400
    assert emulator.post("mutation", body("a:b:c", {}))[0] == 400
    assert emulator.post("nothing", body("jobs:claimOne", {}))[0] == 404


def test_enqueue_then_claim_round_trip(emulator: ConvexEmulator) -> None:
    job_id = emulator.call(
        "mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL, "prompt": "p", "language": "fr"}
    )
    assert isinstance(job_id, str)

    # The Python client's envelope: args as a one-element list.
    status, answer = emulator.post(
        "mutation", body("queue:claimOne", [{"workerId": "w1", "leaseMs": 60_000}])
    )
    assert status == 200
    assert answer["status"] == "success"
    claimed = answer["value"]
    assert claimed["id"] == job_id
    assert claimed["attempt"] == 1
    assert claimed["repositoryUrl"] == REPO_URL
    assert claimed["language"] == "fr"
    assert len(claimed["callbackToken"]) == 64

    # Plain "json" format and a `module.js:function` path are accepted too.
    status, answer = emulator.post("query", body("jobs.js:get", {"jobId": job_id}, fmt="json"))
    assert (status, answer["status"]) == (200, "success")
    assert (answer["value"]["status"], answer["value"]["lockedBy"]) == ("claimed", "w1")

    assert emulator.call("mutation", "queue:claimOne", {"workerId": "w2"}) is None


def test_function_failures_are_http_200_with_error_data(emulator: ConvexEmulator) -> None:
    job_id = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL})
    # Jobs left pending by earlier tests come first: claim up to ours.
    claimed_ids = []
    while claimed := emulator.call("mutation", "queue:claimOne", {"workerId": "holder"}):
        claimed_ids.append(claimed["id"])
    assert job_id in claimed_ids

    status, answer = emulator.post(
        "mutation", body("queue:heartbeat", {"jobId": job_id, "workerId": "intruder"})
    )
    assert status == 200
    assert answer["status"] == "error"
    assert answer["errorData"]["code"] == "LEASE_LOST"
    # Fondation's own words, which its worker recognises.
    assert "Job not found or not owned by worker" in answer["errorMessage"]

    with pytest.raises(ConvexFunctionError) as refused:
        emulator.call("mutation", "queue:heartbeat", {"jobId": job_id, "workerId": "intruder"})
    assert refused.value.code == "LEASE_LOST"

    # Errors that are not refusals (argument validation) carry no errorData.
    status, answer = emulator.post("mutation", body("queue:claimOne", {"workerId": 3}))
    assert (status, answer["status"], "errorData" in answer) == (200, "error", False)
    # A query called as a mutation is a function error, as on Convex.
    status, answer = emulator.post("mutation", body("jobs:get", {"jobId": job_id}))
    assert (status, answer["status"]) == (200, "error")


@pytest.mark.parametrize("hard", [False, True], ids=["stop", "kill"])
def test_data_survives_an_outage(hard: bool) -> None:
    with ConvexEmulator() as emulator:
        first = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL})
        claimed = emulator.call(
            "mutation", "queue:claimOne", {"workerId": "w1", "leaseMs": 600_000}
        )
        second = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL})
        # Replacing the documents deletes rows: the ids after the outage must
        # still line up across the gaps.
        for version in ("v1", "v2"):
            emulator.call(
                "mutation",
                "docs:upsertFromJob",
                {
                    "jobId": first,
                    "repositoryId": claimed["repositoryId"],
                    "runId": version,
                    "workerId": "w1",
                    "attempt": 1,
                    "files": [
                        {
                            "slug": "01_intro",
                            "title": "Intro",
                            "kind": "chapter",
                            "chapterIndex": 0,
                            "content": f"# Intro {version}",
                        }
                    ],
                    "summary": {"chaptersCount": 1, "tutorialsCount": 0, "generatedAt": 0},
                },
            )
        docs = emulator.call("query", "docs:listByJob", {"jobId": first})
        job = emulator.call("query", "jobs:get", {"jobId": first})
        url, pid = emulator.url, emulator.pid

        emulator.restart(hard=hard)

        assert (emulator.url, emulator.pid != pid) == (url, True)
        assert emulator.call("query", "jobs:get", {"jobId": first}) == job
        assert job["lockedBy"] == "w1"
        assert job["leaseUntil"] == claimed["leaseUntil"]
        assert emulator.call("query", "docs:listByJob", {"jobId": first}) == docs
        assert [d["content"] for d in docs] == ["# Intro v2"]
        # The lease is still the holder's: its heartbeat goes on working.
        beat = emulator.call(
            "mutation", "queue:heartbeat", {"jobId": first, "workerId": "w1", "attempt": 1}
        )
        assert beat["attempt"] == 1
        # The queue goes on where it was, and new ids do not reuse old ones.
        assert emulator.call("mutation", "queue:claimOne", {"workerId": "w2"})["id"] == second
        third = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL})
        assert third not in (first, second)
        assert emulator.call("query", "jobs:get", {"jobId": third})["status"] == "pending"


def real_size_course(chapters: int = 12, chapter_bytes: int = 52_000) -> list[dict[str, object]]:
    """A course of Fondation's shape at a real course's size (about 0.9 MB)."""
    files: list[dict[str, object]] = [
        {
            "slug": name,
            "title": title,
            "chapterIndex": -1,
            "kind": "yaml",
            "content": json.dumps({"items": ["x" * 200] * 40}),
        }
        for name, title in (
            ("step1_abstractions", "Abstractions"),
            ("step2_relationships", "Relationships"),
            ("step3_order", "Chapter Order"),
        )
    ]
    for i in range(chapters):
        body = f"# Chapitre {i}\n" + ("Du texte accentué, `code`, ```mermaid```.\n" * 2000)
        body = body[:chapter_bytes]
        files.append(
            {
                "slug": f"{i:02d}_c",
                "title": f"C{i}",
                "chapterIndex": i,
                "kind": "chapter",
                "content": body,
            }
        )
        files.append(
            {
                "slug": f"tutorial_{i}_c",
                "title": f"Interactive Tutorial: C{i}",
                "chapterIndex": i,
                "kind": "tutorial",
                "content": body[: chapter_bytes // 3],
            }
        )
    return files


@pytest.mark.parametrize("functions", ["project", "fondation"])
def test_a_real_size_course_goes_up_in_one_call_on_both_function_sets(
    functions: FunctionSet,
) -> None:
    files = real_size_course()
    size = sum(len(str(f["content"]).encode()) for f in files)
    assert 800_000 < size < 1_000_000
    with ConvexEmulator(functions=functions) as emulator:
        if functions == "fondation":
            job = FondationSeed(emulator).pending_job()
            job_id, repository_id = job.job_id, job.repository_id
        else:
            job_id = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO_URL})
            repository_id = emulator.call("query", "jobs:get", {"jobId": job_id})["repositoryId"]
        claimed = emulator.call("mutation", "queue:claimOne", {"workerId": "w"}, anonymous=True)
        assert claimed["id"] == job_id
        emulator.call(
            "mutation",
            "docs:upsertFromJob",
            {
                "jobId": job_id,
                "repositoryId": repository_id,
                "files": files,
                "summary": {"chaptersCount": 12, "tutorialsCount": 12, "generatedAt": 0},
            },
            anonymous=True,
        )
        emulator.call(
            "mutation",
            "queue:complete",
            {"jobId": job_id, "workerId": "w", "docsCount": len(files)},
            anonymous=True,
        )
        row = emulator.call("query", "jobs:getJob", {"jobId": job_id}, anonymous=True)
        assert (row["status"], row["docsCount"]) == ("completed", len(files))
