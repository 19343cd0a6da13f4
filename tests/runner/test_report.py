from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fondation_contracts.course import Course, Document, DocumentKind
from fondation_contracts.ingest import StepState
from fondation_runner.progress import make_event
from fondation_runner.report import (
    IngestClient,
    IngestError,
    IngestRejected,
    IngestTarget,
    IngestUnavailable,
    Reporter,
)
from tests.runner.ingest_server import IngestServer, free_port

TOKEN = "per-job-token-4b1d"


def target(url: str) -> IngestTarget:
    return IngestTarget(url=url, namespace="team-a", name="my-course", token=TOKEN)


@pytest.fixture
async def server() -> AsyncIterator[IngestServer]:
    server = IngestServer()
    await server.start()
    yield server
    await server.stop()


def fast_client(url: str, **options: object) -> IngestClient:
    settings: dict[str, object] = {"first_delay": 0.02, "max_delay": 0.1, "give_up_after": 10.0}
    settings.update(options)
    return IngestClient(target(url), **settings)  # type: ignore[arg-type]


async def test_posts_with_the_bearer_token(server: IngestServer) -> None:
    client = fast_client(server.url)
    await client.post_event(make_event("order", StepState.STARTED, "go"))
    await client.close()

    [received] = server.requests
    assert (received.what, received.namespace, received.name) == ("events", "team-a", "my-course")
    assert received.authorization == f"Bearer {TOKEN}"
    assert received.body == {
        "step": 3,
        "stepName": "order",
        "state": "started",
        "message": "go",
        "commit": "",
        "usage": None,
    }


async def test_retries_until_the_operator_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    server = IngestServer(port=free_port())
    failed_once = asyncio.Event()
    problems: list[str] = []

    def on_retry(what: str, attempt: int, problem: str) -> None:
        problems.append(problem)
        failed_once.set()

    client = fast_client(server.url, on_retry=on_retry)
    posting = asyncio.create_task(client.post_course(Course(analysis="my-course")))
    try:
        await asyncio.wait_for(failed_once.wait(), timeout=10)  # nothing listens yet
        assert not posting.done()
        await server.start()
        await asyncio.wait_for(posting, timeout=10)
    finally:
        posting.cancel()
        await client.close()
        await server.stop()

    assert [r.what for r in server.requests] == ["course"]
    assert server.of("course")[0]["analysis"] == "my-course"
    assert problems[0].startswith("ClientConnectorError")
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_server_errors_and_throttling_are_retried(status: int) -> None:
    server = IngestServer(statuses=[status, status], retry_after="0")
    await server.start()
    client = fast_client(server.url)
    try:
        await client.post_event(make_event("review", StepState.FINISHED))
    finally:
        await client.close()
        await server.stop()
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_client_errors_are_final(status: int) -> None:
    server = IngestServer(statuses=[status])
    await server.start()
    retries: list[int] = []
    client = fast_client(
        server.url, on_retry=lambda what, attempt, problem: retries.append(attempt)
    )
    try:
        with pytest.raises(IngestRejected) as rejected:
            await client.post_event(make_event("review", StepState.FINISHED))
    finally:
        await client.close()
        await server.stop()
    assert rejected.value.status == status
    assert len(server.requests) == 1
    assert retries == []
    assert TOKEN not in str(rejected.value)


async def test_gives_up_after_the_budget() -> None:
    client = fast_client(f"http://127.0.0.1:{free_port()}", give_up_after=1.0)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(IngestUnavailable, match=r"could not post events to the operator in 1s"):
            await client.post_event(make_event("order", StepState.STARTED))
        assert 0.9 < loop.time() - started < 5
        # The budget is shared by all posts: the next one gets no fresh second.
        started = loop.time()
        with pytest.raises(IngestUnavailable):
            await client.post_event(make_event("order", StepState.FINISHED))
        assert loop.time() - started < 1.0
    finally:
        await client.close()


async def test_reporter_posts_events_in_order_then_the_course(server: IngestServer) -> None:
    stream = io.StringIO()
    reporter = Reporter(fast_client(server.url), stream=stream)
    for step in ("abstractions", "relationships", "order"):
        await reporter(make_event(step, StepState.STARTED))
        await reporter(make_event(step, StepState.FINISHED))
    course = Course(
        analysis="my-course",
        documents=[Document.build(kind=DocumentKind.TUTORIAL, slug="t", title="T", content="x")],
    )

    await reporter.finish(course)

    assert [r.what for r in server.requests] == ["events"] * 6 + ["course"]
    assert [(e["stepName"], e["state"]) for e in server.of("events")][:2] == [
        ("abstractions", "started"),
        ("abstractions", "finished"),
    ]
    assert Course.model_validate(server.of("course")[0]) == course
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/6 abstractions] started"
    assert lines[-1].startswith("[3/6 order] finished in ")
    assert TOKEN not in stream.getvalue()


async def test_a_lost_event_does_not_stop_the_course(caplog: pytest.LogCaptureFixture) -> None:
    server = IngestServer(statuses=[404])
    await server.start()
    reporter = Reporter(fast_client(server.url), stream=io.StringIO())
    try:
        with caplog.at_level(logging.ERROR):
            await reporter(make_event("order", StepState.STARTED))
            await reporter.finish(Course())
    finally:
        await server.stop()
    assert [r.what for r in server.requests] == ["events", "course"]
    assert "progress event for step 3 not delivered" in caplog.text


async def test_without_an_endpoint_only_lines_are_printed() -> None:
    stream = io.StringIO()
    reporter = Reporter(None, stream=stream)
    await reporter(make_event("clone", StepState.CLONING, "https://h/r.git at main"))
    await reporter.finish(Course())
    assert stream.getvalue() == "[0/6 clone] cloning: https://h/r.git at main\n"


def test_target_from_the_pod_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    env = {"FONDATION_INGEST_URL": "http://op:8443/", "FONDATION_TOKEN_FILE": str(token_file)}

    found = IngestTarget.from_environment(namespace="ns", name="aj/1", environ=env)

    assert found is not None
    assert found.token == TOKEN
    assert found.endpoint("course") == "http://op:8443/v1/namespaces/ns/analysisjobs/aj%2F1/course"
    assert TOKEN not in repr(found)
    assert IngestTarget.from_environment(namespace="ns", name="n", environ={}) is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"FONDATION_INGEST_URL": "http://op"}, "FONDATION_TOKEN_FILE is not"),
        (
            {"FONDATION_INGEST_URL": "http://op", "FONDATION_TOKEN_FILE": "/nonexistent/token"},
            "cannot read the token file /nonexistent/token",
        ),
    ],
)
def test_target_misconfiguration_is_explained(env: dict[str, str], problem: str) -> None:
    with pytest.raises(IngestError, match=problem):
        IngestTarget.from_environment(namespace="ns", name="n", environ=env)
