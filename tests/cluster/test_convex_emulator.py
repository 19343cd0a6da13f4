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

from tests.cluster.convex_emulator import ConvexEmulator, ConvexFunctionError

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
