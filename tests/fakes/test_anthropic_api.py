"""The fake Anthropic API and the sinkhole proxy on their own, over plain HTTP:
the wire format the CLI relies on, side requests, recording, standalone mode."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.anthropic_api import FakeAnthropicAPI, Script, call, text, tool_use
from tests.fakes.sinkhole_proxy import SinkholeProxy

ROOT = Path(__file__).resolve().parents[2]


def body(marker: str, *, assistant_turns: int = 0, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": marker}]}
    ]
    for _ in range(assistant_turns):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": "..."}]},
            {"role": "user", "content": "go on"},
        ]
    return {
        "model": "claude-test",
        "max_tokens": 1000,
        "stream": True,
        "tools": [{"name": "Read"}, {"name": "Grep"}],
        "messages": messages,
        **extra,
    }


async def sse_events(response: aiohttp.ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in (await response.text()).split("\n\n"):
        if not chunk.strip():
            continue
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropicAPI]:
    scripts = [
        Script(
            name="s",
            marker="MARK",
            turns=[tool_use(call("Grep", pattern="x" * 100), preamble="Looking."), text("Done.")],
        ),
        Script.forever("forever", "LOOP"),
    ]
    async with FakeAnthropicAPI(scripts) as api:
        yield api


async def post(
    fake: FakeAnthropicAPI,
    payload: dict[str, Any],
    path: str = "/v1/messages?beta=true",
    **headers: str,
) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        response = await session.post(fake.base_url + path, json=payload, headers=headers)
        await response.read()
        return response


async def test_a_tool_use_turn_streams_as_the_api_does(fake: FakeAnthropicAPI) -> None:
    response = await post(fake, body("MARK"))
    events = await sse_events(response)

    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "Grep"
    partial = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"pattern": "x" * 100}
    assert names.count("content_block_delta") > 2  # the input came in several pieces
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert fake.requests[-1].turn == 0 and fake.requests[-1].answer == "tool_use:Grep"


async def test_the_turn_is_the_number_of_assistant_messages(fake: FakeAnthropicAPI) -> None:
    response = await post(fake, body("MARK", assistant_turns=1, stream=False))
    message = await response.json()
    assert message["content"] == [{"type": "text", "text": "Done."}]
    assert message["stop_reason"] == "end_turn"
    response = await post(fake, body("MARK", assistant_turns=5, stream=False))
    assert "nothing more" in (await response.json())["content"][0]["text"]
    response = await post(fake, body("LOOP", assistant_turns=7, stream=False))
    assert (await response.json())["stop_reason"] == "tool_use"
    assert [r.turn for r in fake.requests] == [1, 5, 7]


async def test_side_requests_do_not_advance_a_script(fake: FakeAnthropicAPI) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    title = body(
        "MARK",
        tools=[],
        stream=False,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    answer = await (await post(fake, title)).json()
    assert set(json.loads(answer["content"][0]["text"])) == {"title"}
    await post(fake, body("MARK", max_tokens=1))
    counted = await (await post(fake, body("MARK"), path="/v1/messages/count_tokens")).json()
    assert counted["input_tokens"] > 0
    async with aiohttp.ClientSession() as session:
        hello = await session.head(fake.base_url + "/api/hello")
        unknown = await session.get(fake.base_url + "/api/oauth/profile")
    assert (hello.status, unknown.status) == (200, 404)

    assert [r.kind for r in fake.requests] == ["title", "quota", "count_tokens", "hello", "unknown"]
    assert fake.conversation_requests() == []
    assert [r.path for r in fake.unknown_requests()] == ["/api/oauth/profile"]


async def test_credentials_are_recorded_only_as_a_fingerprint(fake: FakeAnthropicAPI) -> None:
    await post(fake, body("MARK"), **{"x-api-key": "sk-secret-1"})
    await post(fake, body("MARK"), Authorization="Bearer tok-secret-2")
    api_key, bearer = fake.requests
    assert api_key.credential_kind == "x-api-key" and api_key.credential_is("sk-secret-1")
    assert bearer.credential_kind == "bearer" and bearer.credential_is("tok-secret-2")
    dumped = json.dumps([r.model_dump(mode="json") for r in fake.requests])
    assert "sk-secret-1" not in dumped and "tok-secret-2" not in dumped


async def test_the_sinkhole_refuses_and_records() -> None:
    async with SinkholeProxy() as proxy, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get("https://api.anthropic.invalid/v1/x", proxy=proxy.url)
        response = await session.get("http://example.invalid/y", proxy=proxy.url)
        assert response.status == 403
    assert proxy.hosts() == {"api.anthropic.invalid:443", "example.invalid"}


async def test_it_runs_standalone(tmp_path: Path) -> None:
    config = tmp_path / "fake.json"
    config.write_text(
        json.dumps(
            {"scripts": [{"name": "s", "marker": "M", "turns": [{"kind": "text", "text": "hi"}]}]}
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.anthropic_api",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            first = await process.stdout.readline()
        base_url = json.loads(first)["base_url"]
        async with aiohttp.ClientSession() as session:
            reply = await session.post(base_url + "/v1/messages", json=body("M", stream=False))
            assert (await reply.json())["content"][0]["text"] == "hi"
            recorded = await (await session.get(base_url + "/_fake/requests")).json()
        assert [r["script"] for r in recorded] == ["s"]
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await process.wait()
    assert code == 0
