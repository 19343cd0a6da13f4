"""The Convex HTTP client and the typed contract, against the emulator running
the project's real convex/ functions, and against a loopback server for the
answers the emulator does not give (HTTP 560, 5xx, garbage)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from pydantic import Field, SecretStr

from fondation_operator.convexbridge.api import ConvexApi, JobRef, lost_lease
from fondation_operator.convexbridge.client import (
    ConvexArgs,
    ConvexClient,
    ConvexFunctionError,
    ConvexRequestRejected,
    ConvexUnavailable,
)
from fondation_operator.convexbridge.models import DocFile, DocsSummary, JobResult
from fondation_operator.convexbridge.settings import FunctionNames
from tests.cluster.convex_emulator import ConvexEmulator

REPO = "https://example.com/acme/widgets.git"


@pytest.fixture
async def client(emulator: ConvexEmulator) -> AsyncIterator[ConvexClient]:
    convex = ConvexClient(emulator.url, SecretStr(emulator.deploy_key), timeout_s=10)
    yield convex
    await convex.close()


def api_for(client: ConvexClient, worker: str = "w1", **names: str) -> ConvexApi:
    return ConvexApi(client, FunctionNames(**names), worker_id=worker, lease_ms=60_000)


async def test_queries_and_mutations_round_trip(
    client: ConvexClient, emulator: ConvexEmulator
) -> None:
    job_id = await client.mutation("jobs:enqueue", {"repositoryUrl": REPO, "language": "fr"})
    job = await client.query("jobs:get", {"jobId": job_id})
    assert (job["_id"], job["status"], job["language"]) == (job_id, "pending", "fr")
    assert client.calls == {"jobs:enqueue": 1, "jobs:get": 1}


async def test_refusals_carry_their_code(client: ConvexClient) -> None:
    job_id = await client.mutation("jobs:enqueue", {"repositoryUrl": REPO})
    await api_for(client, "holder").claim_one()
    with pytest.raises(ConvexFunctionError) as refused:
        await api_for(client, "intruder").heartbeat(JobRef(job_id, 1))
    assert refused.value.code == "LEASE_LOST"
    assert lost_lease(refused.value)
    assert not refused.value.missing_function


async def test_a_missing_function_is_told_apart_from_a_refusal(client: ConvexClient) -> None:
    for path in ("nosuch:fn", "docs:nosuch"):
        with pytest.raises(ConvexFunctionError) as missing:
            await client.mutation(path, {})
        assert missing.value.missing_function, missing.value.message
    with pytest.raises(ConvexFunctionError) as invalid:
        await client.mutation("docs:putBatch", {})
    assert not invalid.value.missing_function


async def test_contract_detection(client: ConvexClient) -> None:
    assert await api_for(client).detect() == "extended"
    # A deployment without the batched upload is Fondation's original.
    assert await api_for(client, put_batch="docs:nosuch").detect() == "original"


class Leaky(ConvexArgs):
    job_id: SecretStr = Field(alias="jobId")


async def test_secrets_are_scrubbed_from_errors(
    client: ConvexClient, emulator: ConvexEmulator
) -> None:
    """Convex validator errors quote the value they refuse."""
    secret = "s3cr3t-value-that-is-not-an-id"
    with pytest.raises(ConvexFunctionError) as refused:
        await client.query("jobs:get", Leaky(job_id=SecretStr(secret)))
    assert secret not in str(refused.value)
    assert "[redacted]" in refused.value.message


async def test_a_bad_deploy_key_is_a_rejected_request(emulator: ConvexEmulator) -> None:
    wrong = "prod:wrong-key-0123456789"
    convex = ConvexClient(emulator.url, SecretStr(wrong))
    try:
        with pytest.raises(ConvexRequestRejected) as rejected:
            await convex.query("jobs:get", {"jobId": "x"})
        assert rejected.value.status == 401
        assert wrong not in str(rejected.value)
    finally:
        await convex.close()


async def test_nobody_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    convex = ConvexClient(f"http://127.0.0.1:{port}", SecretStr("k"), timeout_s=2)
    try:
        with pytest.raises(ConvexUnavailable):
            await convex.mutation("jobs:claimOne", {"workerId": "w"})
    finally:
        await convex.close()


FAKE_KEY = SecretStr("key")
AUTHORIZATIONS: list[str | None] = []
"""The Authorization header of each call `fake_convex` answered."""


@pytest.fixture
async def fake_convex() -> AsyncIterator[Callable[..., ConvexClient]]:
    """A loopback server answering every call with a given HTTP status and body;
    `make(status, body, key)` is a client of it (deploy key `key`)."""
    answer: dict[str, object] = {}
    AUTHORIZATIONS.clear()

    async def handle(request: web.Request) -> web.Response:
        AUTHORIZATIONS.append(request.headers.get("Authorization"))
        return web.Response(
            status=int(str(answer["status"])),
            text=str(answer["body"]),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/api/{kind}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    clients: list[ConvexClient] = []

    def make(status: int, body: str, key: SecretStr | None = FAKE_KEY) -> ConvexClient:
        answer.update(status=status, body=body)
        clients.append(ConvexClient(f"http://127.0.0.1:{port}", key))
        return clients[-1]

    yield make
    for c in clients:
        await c.close()
    await runner.cleanup()


async def test_http_560_with_a_json_body_is_a_function_error(
    fake_convex: Callable[..., ConvexClient],
) -> None:
    client = fake_convex(560, '{"status":"error","errorMessage":"boom","errorData":{"code":"X"}}')
    with pytest.raises(ConvexFunctionError) as failed:
        await client.mutation("jobs:claimOne", {})
    assert (failed.value.message, failed.value.code) == ("boom", "X")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, '{"code":"Overloaded"}', ConvexUnavailable),
        (429, "{}", ConvexUnavailable),
        (500, "oops", ConvexUnavailable),
        (200, "not json", ConvexUnavailable),
        (404, '{"code":"NotFound"}', ConvexRequestRejected),
    ],
)
async def test_transport_failures(
    fake_convex: Callable[..., ConvexClient],
    status: int,
    body: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await fake_convex(status, body).mutation("jobs:claimOne", {})


async def test_a_whole_attempt_through_the_typed_contract(client: ConvexClient) -> None:
    """claim -> heartbeat -> status -> batched upload -> complete, lease-checked."""
    job_id = await client.mutation("jobs:enqueue", {"repositoryUrl": REPO, "branch": "dev"})
    api = api_for(client)
    assert await api.detect() == "extended"
    claim = await api.claim_one()
    assert claim is not None
    assert (claim.id, claim.current_attempt, claim.branch) == (job_id, 1, "dev")
    assert claim.callback_token is not None
    ref = JobRef(job_id, claim.current_attempt)
    await api.heartbeat(ref)
    await api.heartbeat(
        ref, status="analyzing", progress="Étape 2/6", current_step=2, total_steps=6
    )
    files = [
        DocFile(slug=f"d{i}", title=f"D{i}", chapter_index=i, content=f"# {i}", kind="chapter")
        for i in range(3)
    ]
    summary = DocsSummary(chapters_count=3, tutorials_count=0, generated_at=1)
    await api.put_batch(ref, "run-1", files[:2])
    await api.put_batch(ref, "run-1", files[1:])  # overlapping re-delivery is harmless
    committed = await api.commit_run(ref, "run-1", summary, 3)
    assert committed.docs_count == 3
    done = await api.complete(ref, JobResult(success=True, documents=3), 3)
    assert done.status == "completed"
    job = await client.query("jobs:get", {"jobId": job_id})
    assert (job["status"], job["docsCount"], job["progress"]) == ("completed", 3, "Étape 2/6")
    docs = await client.query("docs:listByJob", {"jobId": job_id})
    assert [d["slug"] for d in docs] == ["d0", "d1", "d2"]
    # A stale attempt is refused with a code the bridge treats as a lost lease.
    with pytest.raises(ConvexFunctionError) as stale:
        await api.heartbeat(JobRef(job_id, 7))
    assert lost_lease(stale.value)


@pytest.mark.parametrize(
    ("message", "lost"),
    [
        ("Job not found or not owned by worker", True),  # Fondation's queue:*
        ("Uncaught Error: Job not found or not owned by worker\n    at handler", True),
        ("Job not found", True),
        ("Invalid callback token", False),
        ("ArgumentValidationError: Value does not match validator", False),
    ],
)
def test_fondations_refusals_are_recognised_by_their_message(message: str, lost: bool) -> None:
    assert lost_lease(ConvexFunctionError("queue:heartbeat", message)) is lost


async def test_without_a_deploy_key_no_authorization_is_sent(
    fake_convex: Callable[..., ConvexClient],
) -> None:
    """Fondation's functions are public: its worker sends no key, nor do we."""
    success = '{"status": "success", "value": null}'
    assert await fake_convex(200, success, None).mutation("queue:claimOne", {}) is None
    assert await fake_convex(200, success).mutation("queue:claimOne", {}) is None
    assert AUTHORIZATIONS == [None, "Convex key"]
