"""Claim records: the callback token is stored, and shown nowhere else."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import pytest
from pydantic import SecretStr

from fondation_operator.convexbridge import analysisjobs
from fondation_operator.convexbridge.claims import (
    MAX_RECORD_BYTES,
    ClaimRecord,
    ClaimStore,
    RecordInvalid,
    RecordRefused,
    entry_key,
)
from fondation_operator.convexbridge.models import ClaimedJob, UpdateStatusArgs
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError

TOKEN = "b8c614f5477f4d769fed2d7b9fc8931a94911ec5424241a7b6b83d2abc515c6c"


def record() -> ClaimRecord:
    return ClaimRecord(
        namespace="courses",
        name="k57abc-2",
        job_id="k57abc",
        attempt=2,
        repository_id="r1",
        repository_url="https://github.com/acme/widgets.git",
        branch="main",
        language="fr",
        callback_token=SecretStr(TOKEN),
    )


def test_a_record_round_trips_through_the_secret_with_its_token() -> None:
    encoded = record().encode()
    assert TOKEN in base64.b64decode(encoded).decode()
    decoded = ClaimRecord.decode(encoded)
    assert decoded.callback_token is not None
    assert decoded.callback_token.get_secret_value() == TOKEN
    assert decoded.model_dump(exclude={"callback_token"}) == record().model_dump(
        exclude={"callback_token"}
    )
    assert entry_key(decoded.key) == "courses.k57abc-2"


def test_the_token_is_hidden_everywhere_but_the_wire() -> None:
    for text in (repr(record()), str(record()), record().model_dump_json()):
        assert TOKEN not in text
    claim = ClaimedJob.model_validate({"_id": "k57abc", "callbackToken": TOKEN, "attempt": 1})
    assert TOKEN not in repr(claim)
    assert TOKEN not in claim.model_dump_json()
    args = UpdateStatusArgs(job_id="k57abc", status="failed", callback_token=SecretStr(TOKEN))
    assert TOKEN not in repr(args)
    assert args.wire()["callbackToken"] == TOKEN
    assert args.secrets() == [TOKEN]


def test_claims_of_both_contract_flavours() -> None:
    ours = ClaimedJob.model_validate(
        {"_id": "j1", "id": "j1", "attempt": 2, "attempts": 2, "repositoryUrl": "https://x/y"}
    )
    assert (ours.id, ours.current_attempt) == ("j1", 2)
    # Fondation's original claimOne: `id`, and `attempts` counts past failures.
    original = ClaimedJob.model_validate(
        {"id": "j2", "repositoryId": "r", "prompt": "p", "callbackToken": "t", "attempts": 1}
    )
    assert (original.id, original.current_attempt, original.repository_url) == ("j2", 2, None)


def test_analysisjob_names_are_derived_from_the_id_and_attempt() -> None:
    assert analysisjobs.name_for("k57abc123", 1) == "k57abc123-1"
    assert analysisjobs.name_for("k57abc123", 2) == "k57abc123-2"
    # Not a DNS name as it stands: folded, and a hash keeps it unique.
    upper, lower = analysisjobs.name_for("Ab_C", 1), analysisjobs.name_for("ab-c", 1)
    assert upper != lower
    assert upper.startswith("ab-c-") and upper.endswith("-1")
    long_name = analysisjobs.name_for("x" * 300, 3)
    assert len(long_name) <= 200
    assert analysisjobs.label_value("y" * 100).startswith("job-")


class FakeSecrets:
    """Stands in for the API server: one Secret, merge-patched, slow to write."""

    def __init__(self, fail: int = 0, refuse: str = "") -> None:
        self.data: dict[str, str] = {}
        self.patches = 0
        self.fail = fail
        self.refuse = refuse

    async def patch(self, res: object, name: str, body: dict[str, Any], namespace: str) -> None:
        self.patches += 1
        await asyncio.sleep(0.01)
        if self.fail:
            self.fail -= 1
            raise ApiError(500, "InternalError", "etcd timeout")
        if self.refuse and self.refuse in body["data"]:
            raise ApiError(422, "Invalid", f"data[{self.refuse}]: Invalid value")
        for key, value in body["data"].items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


def store_with(fake: FakeSecrets) -> ClaimStore:
    return ClaimStore(cast(KubeClient, fake), "fondation-system", "fondation-convex-claims")


def numbered(i: int) -> ClaimRecord:
    return record().model_copy(update={"name": f"job{i}-1", "job_id": f"job{i}"})


async def test_concurrent_changes_are_written_together() -> None:
    fake = FakeSecrets()
    store = store_with(fake)
    await asyncio.gather(*(store.put(numbered(i)) for i in range(50)))
    assert len(fake.data) == 50
    assert fake.patches <= 3  # one in flight, the rest batched behind it
    assert ClaimRecord.decode(fake.data["courses.job7-1"]).job_id == "job7"
    await asyncio.gather(
        *(store.remove(numbered(i).key) for i in range(0, 50, 2)), store.put(numbered(99))
    )
    assert sorted(fake.data) == sorted(
        [f"courses.job{i}-1" for i in range(1, 50, 2)] + ["courses.job99-1"]
    )


async def test_the_latest_change_of_an_entry_wins_and_failures_reach_every_waiter() -> None:
    fake = FakeSecrets()
    store = store_with(fake)
    await asyncio.gather(store.put(numbered(1)), store.remove(numbered(1).key))
    assert fake.data == {}
    failing = store_with(FakeSecrets(fail=1))
    results = await asyncio.gather(
        failing.put(numbered(1)), failing.put(numbered(2)), return_exceptions=True
    )
    assert all(isinstance(r, ApiError) for r in results)
    await failing.put(numbered(3))  # the next write goes through


async def test_one_refused_record_fails_alone_and_the_others_are_stored() -> None:
    fake = FakeSecrets(refuse="courses.job13-1")
    store = store_with(fake)
    results = await asyncio.gather(
        *(store.put(numbered(i)) for i in range(20)), return_exceptions=True
    )
    refused = [i for i, r in enumerate(results) if r is not None]
    assert refused == [13]
    assert isinstance(results[13], RecordRefused)
    assert "courses.job13-1" in str(results[13])
    assert sorted(fake.data) == sorted(f"courses.job{i}-1" for i in range(20) if i != 13)


def _claim(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "namespace": "courses",
        "name": "k57abc-1",
        "job_id": "k57abc",
        "attempt": 1,
        "repository_url": "https://github.com/acme/widgets.git",
        "branch": "main",
        "callback_token": TOKEN,
    }
    return {**fields, **overrides}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository_url", "https://github.com/acme/" + "w" * 3000),
        ("branch", "main\nsecond-line"),
        ("branch", "b" * 300),
        ("job_id", "../../etc"),
        ("job_id", "j" * 500),
        ("language", "en" * 40),
        ("callback_token", "t" * 5000),
        ("repository_id", "r\x1b[31m"),
        ("attempt", 0),
    ],
)
def test_claim_fields_are_validated_and_bounded_before_anything_is_recorded(
    field: str, value: object
) -> None:
    with pytest.raises(RecordInvalid) as caught:
        ClaimRecord.bounded(**_claim(**{field: value}))
    message = str(caught.value)
    assert field in message
    assert str(value) not in message and TOKEN not in message


def test_a_record_of_maximal_fields_fits_its_budget_or_is_refused() -> None:
    record = ClaimRecord.bounded(
        **_claim(repository_url="https://g.example/" + "a" * 1500, callback_token="t" * 1024)
    )
    assert len(record.encode()) <= MAX_RECORD_BYTES
    with pytest.raises(RecordInvalid, match="over 4096 bytes"):
        ClaimRecord.bounded(
            **_claim(repository_url="https://g.example/" + "a" * 2000, callback_token="t" * 1024)
        )
