"""A scripted fake of the Anthropic Messages API, served on 127.0.0.1.

Why: the claude backend drives the real Claude Code CLI (the claude-agent-sdk
wheel bundles it) and that CLI honours `ANTHROPIC_BASE_URL`. Pointed at this
server, the whole real stack runs -- SDK, CLI, and the CLI's own Read/Glob/Grep
on the clone when the fake answers with `tool_use` -- with no credentials and
no network, and every request is recorded so tests can assert on the wire.

Scripting: a conversation is picked out by a marker string in its first user
message (or by a predicate) and answered turn by turn. The turn number is the
number of assistant messages already in the request, so the server keeps no
per-conversation state and a retried request gets the same answer.

The CLI also sends requests of its own: a session-title request with a JSON
schema and no tools, one-token quota probes, token counting and a `/api/hello`
warm-up. They are recognised and answered without advancing any script.

Run standalone (benchmarks): `python -m tests.fakes.anthropic_api --port 0`
prints `{"base_url": ...}` on stdout, serves until SIGTERM, and exposes what it
recorded at `GET /_fake/requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

logger = logging.getLogger(__name__)

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
"""Headers never recorded as such: only a fingerprint of the credential is kept."""

_CHUNK = 48
"""Characters per streamed delta: several deltas per block, as the real API sends."""


# -- What a script says ------------------------------------------------------


class _Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency: float | None = None
    """Seconds before the answer starts; None uses the server's default."""


class TextTurn(_Turn):
    """A final text answer: the model is done with this conversation."""

    kind: Literal["text"] = "text"
    text: str


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolUseTurn(_Turn):
    """One or more (parallel) tool calls; the CLI runs them and sends the results back."""

    kind: Literal["tool_use"] = "tool_use"
    calls: list[ToolCall] = Field(min_length=1)
    text: str = ""
    """Optional text before the calls, as a model often says what it is about to do."""


class ErrorTurn(_Turn):
    """An HTTP error in the API's own error format (auth failure, overload...)."""

    kind: Literal["error"] = "error"
    status: int = 500
    error_type: str = "api_error"
    message: str = "scripted failure"


Turn = Annotated[TextTurn | ToolUseTurn | ErrorTurn, Field(discriminator="kind")]


def text(answer: str, *, latency: float | None = None) -> TextTurn:
    return TextTurn(text=answer, latency=latency)


def call(name: str, **tool_input: Any) -> ToolCall:
    return ToolCall(name=name, input=tool_input)


def tool_use(*calls: ToolCall, preamble: str = "", latency: float | None = None) -> ToolUseTurn:
    return ToolUseTurn(calls=list(calls), text=preamble, latency=latency)


# -- What the server saw -----------------------------------------------------

RequestKind = Literal["conversation", "title", "quota", "count_tokens", "hello", "unknown"]


class ServedUsage(BaseModel):
    input_tokens: int
    output_tokens: int


class ToolResult(BaseModel):
    tool_use_id: str
    text: str
    is_error: bool = False


class RecordedRequest(BaseModel):
    """One request as received, minus secrets: what tests assert on."""

    seq: int
    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    credential_kind: Literal["x-api-key", "bearer"] | None = None
    credential_sha256: str | None = None
    kind: RequestKind = "unknown"
    session_id: str = ""
    model: str = ""
    stream: bool = False
    max_tokens: int | None = None
    system: str = ""
    tools: list[str] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    script: str = ""
    turn: int = -1
    answer: str = ""
    """What was sent back: `text`, `tool_use:Read,Grep`, `error:401`, `404`..."""
    usage: ServedUsage | None = None

    def credential_is(self, value: str) -> bool:
        """Whether the request carried exactly this credential (compared by hash)."""
        return self.credential_sha256 == _sha256(value)

    @property
    def first_user_text(self) -> str:
        for message in self.messages:
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    def tool_results(self) -> list[ToolResult]:
        """The tool results the CLI sent back in this request's last user message."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [
                ToolResult(
                    tool_use_id=str(block.get("tool_use_id", "")),
                    text=_text_of(block.get("content")),
                    is_error=bool(block.get("is_error", False)),
                )
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            ]
        return []


# -- Scripts -----------------------------------------------------------------

Matcher = Callable[[RecordedRequest], bool]
Responder = Callable[[RecordedRequest, int], TextTurn | ToolUseTurn | ErrorTurn]


class Script(BaseModel):
    """How one kind of conversation is answered.

    `marker` (found in the first user message) or `matcher` selects the
    conversation; `responder` computes a turn from the request when a fixed
    list is not enough (e.g. echoing ids from the prompt); otherwise `turns`
    is played in order, cycling when `repeat` is set (a model that never
    stops), then `exhausted` is answered.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    name: str
    marker: str | None = None
    matcher: Matcher | None = Field(default=None, exclude=True)
    responder: Responder | None = Field(default=None, exclude=True)
    turns: list[Turn] = Field(default_factory=list)
    repeat: bool = False
    exhausted: TextTurn = TextTurn(text="(the fake has nothing more to say)")

    def matches(self, request: RecordedRequest) -> bool:
        if self.matcher is not None:
            return self.matcher(request)
        return self.marker is not None and self.marker in request.first_user_text

    def turn(self, request: RecordedRequest, index: int) -> TextTurn | ToolUseTurn | ErrorTurn:
        if self.responder is not None:
            return self.responder(request, index)
        if self.turns and self.repeat:
            return self.turns[index % len(self.turns)]
        if index < len(self.turns):
            return self.turns[index]
        return self.exhausted

    @classmethod
    def forever(cls, name: str, marker: str, *calls: ToolCall) -> Script:
        """A model that calls tools and never gives a final answer."""
        chosen = list(calls) or [call("Glob", pattern="**/*")]
        return cls(name=name, marker=marker, turns=[ToolUseTurn(calls=chosen)], repeat=True)


DEFAULT_SCRIPT = Script(name="default", turns=[TextTurn(text="This is the fake's default answer.")])


class FakeConfig(BaseModel):
    """The standalone server's configuration file (JSON)."""

    model_config = ConfigDict(extra="forbid")

    scripts: list[Script] = Field(default_factory=list)
    default: Script = DEFAULT_SCRIPT
    latency: float = 0.0


# -- The server --------------------------------------------------------------


class FakeAnthropicAPI:
    """The fake server; use as `async with FakeAnthropicAPI(scripts) as fake:`."""

    def __init__(
        self,
        scripts: Sequence[Script] = (),
        *,
        default: Script = DEFAULT_SCRIPT,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[RecordedRequest], None] | None = None,
        keep_messages: bool = True,
    ) -> None:
        """`keep_messages=False` drops each request's messages once answered: a long
        benchmark then records O(requests), not O(requests x conversation length)."""
        self.scripts: list[Script] = list(scripts)
        self.keep_messages = keep_messages
        self.default = default
        self.latency = latency
        self.on_request = on_request
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._port = port
        self._seq = itertools.count(1)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    # lifecycle

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_fake/requests", self._dump)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown: handlers still streaming to a killed CLI must not hold teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://{self._host}:{port}"
        return self._base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropicAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("the fake is not started")
        return self._base_url

    # what tests read

    def conversation_requests(self, script: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.kind == "conversation" and (script is None or r.script == script)
        ]

    def sessions(self, script: str | None = None) -> set[str]:
        """The CLI sessions (one per `answer()`) that held a scripted conversation."""
        return {r.session_id for r in self.conversation_requests(script)}

    def unknown_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "unknown"]

    # handlers

    async def _dump(self, _request: web.Request) -> web.Response:
        body = [r.model_dump(mode="json") for r in self.requests]
        return web.json_response(body)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record = self._record(request, raw)
        self.requests.append(record)
        if self.on_request is not None:
            self.on_request(record)
        try:
            return await self._answer(request, record, raw)
        except ConnectionError:
            # The CLI went away mid-answer (stopped by a timeout): nothing left to send.
            record.answer += " (client gone)"
            return web.Response(status=499)
        finally:
            if not self.keep_messages:
                record.messages = []

    def _record(self, request: web.Request, raw: bytes) -> RecordedRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS}
        record = RecordedRequest(
            seq=next(self._seq),
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=headers,
            session_id=request.headers.get("X-Claude-Code-Session-Id", ""),
        )
        api_key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if api_key:
            record.credential_kind, record.credential_sha256 = "x-api-key", _sha256(api_key)
        elif bearer.lower().startswith("bearer "):
            record.credential_kind = "bearer"
            record.credential_sha256 = _sha256(bearer[len("bearer ") :])

        if request.path.rstrip("/") == "/api/hello":
            record.kind = "hello"
        elif request.method == "POST" and request.path == "/v1/messages/count_tokens":
            record.kind = "count_tokens"
        elif request.method == "POST" and request.path == "/v1/messages":
            body = _json_object(raw)
            record.model = str(body.get("model", ""))
            record.stream = bool(body.get("stream", False))
            max_tokens = body.get("max_tokens")
            record.max_tokens = max_tokens if isinstance(max_tokens, int) else None
            record.system = _text_of(body.get("system"))
            record.tools = [
                str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)
            ]
            messages = body.get("messages")
            record.messages = (
                [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
            )
            record.kind = _classify(body, record)
            if not record.session_id:
                record.session_id = _session_from_metadata(body)
        return record

    async def _answer(
        self, request: web.Request, record: RecordedRequest, raw: bytes
    ) -> web.StreamResponse:
        if record.kind == "hello":
            record.answer = "200"
            return web.Response(status=200)
        if record.kind == "count_tokens":
            record.answer = "200"
            return web.json_response({"input_tokens": _tokens(len(raw))})
        if record.kind == "unknown":
            logger.warning(
                "fake Anthropic API: unknown request %s %s", request.method, request.path
            )
            record.answer = "404"
            return _error_response(404, "not_found_error", f"{request.method} {request.path}")

        turn: TextTurn | ToolUseTurn | ErrorTurn
        if record.kind == "title":
            turn = TextTurn(text=json.dumps(_sample_for_schema(_output_schema(_json_object(raw)))))
        elif record.kind == "quota":
            turn = TextTurn(text=".")
        else:
            script = next((s for s in self.scripts if s.matches(record)), self.default)
            record.script = script.name
            record.turn = sum(1 for m in record.messages if m.get("role") == "assistant")
            turn = script.turn(record, record.turn)

        await self._wait(self.latency if turn.latency is None else turn.latency)
        if isinstance(turn, ErrorTurn):
            record.answer = f"error:{turn.status}"
            return _error_response(turn.status, turn.error_type, turn.message)

        blocks, stop_reason = _blocks(turn, record.turn)
        output_chars = sum(len(json.dumps(b)) for b in blocks)
        usage = ServedUsage(input_tokens=_tokens(len(raw)), output_tokens=_tokens(output_chars))
        record.usage = usage
        record.answer = (
            "tool_use:" + ",".join(c.name for c in turn.calls)
            if isinstance(turn, ToolUseTurn)
            else "text"
        )
        message_id = f"msg_fake_{record.seq:06d}"
        if not record.stream:
            return web.json_response(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": record.model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage.model_dump(),
                }
            )
        return await _stream(
            request,
            message_id=message_id,
            model=record.model,
            blocks=blocks,
            stop_reason=stop_reason,
            usage=usage,
        )

    async def _wait(self, seconds: float) -> None:
        """Simulated model latency that a stopping server cuts short."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)


# -- Wire format -------------------------------------------------------------


def _blocks(turn: TextTurn | ToolUseTurn, turn_index: int) -> tuple[list[dict[str, Any]], str]:
    if isinstance(turn, TextTurn):
        return [{"type": "text", "text": turn.text}], "end_turn"
    blocks: list[dict[str, Any]] = []
    if turn.text:
        blocks.append({"type": "text", "text": turn.text})
    blocks.extend(
        {
            "type": "tool_use",
            # Unique within a conversation, and stable when a request is retried.
            "id": f"toolu_fake_{turn_index:04d}_{i:02d}",
            "name": c.name,
            "input": c.input,
        }
        for i, c in enumerate(turn.calls)
    )
    return blocks, "tool_use"


async def _stream(
    request: web.Request,
    *,
    message_id: str,
    model: str,
    blocks: list[dict[str, Any]],
    stop_reason: str,
    usage: ServedUsage,
) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    await response.prepare(request)

    async def send(event: str, data: dict[str, Any]) -> None:
        await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    await send(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        },
    )
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in _pieces(json.dumps(block["input"]))
            ]
        await send(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            await send(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        await send("content_block_stop", {"type": "content_block_stop", "index": index})
    await send(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage.output_tokens},
        },
    )
    await send("message_stop", {"type": "message_stop"})
    await response.write_eof()
    return response


def _error_response(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": error_type, "message": message}}, status=status
    )


# -- Helpers -----------------------------------------------------------------


def _classify(body: dict[str, Any], record: RecordedRequest) -> RequestKind:
    """Tell the CLI's own side requests from the scripted conversation."""
    if record.max_tokens is not None and record.max_tokens <= 1:
        return "quota"
    if not record.tools and _output_schema(body) is not None:
        return "title"
    return "conversation"


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _sample_for_schema(schema: dict[str, Any] | None) -> Any:
    """A small value that satisfies a JSON schema (what a title request expects)."""
    schema = schema or {}
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: _sample_for_schema(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "Fake session"


def _session_from_metadata(body: dict[str, Any]) -> str:
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(user_id)
            if isinstance(parsed, dict):
                return str(parsed.get("session_id", ""))
    return ""


def _text_of(content: Any) -> str:
    """The text of a message content or system prompt (string or block list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) if b.get("type") == "text" else _text_of(b.get("content"))
            for b in content
            if isinstance(b, dict)
        )
    return ""


def _json_object(raw: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return parsed
    return {}


def _pieces(s: str) -> list[str]:
    return [s[i : i + _CHUNK] for i in range(0, len(s), _CHUNK)] or [""]


def _tokens(chars: int) -> int:
    """About four characters per token, as a stable stand-in for a tokenizer."""
    return max(1, chars // 4)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- Standalone --------------------------------------------------------------


async def _serve(args: argparse.Namespace, config: FakeConfig) -> None:
    fake = FakeAnthropicAPI(
        config.scripts,
        default=config.default,
        latency=args.latency if args.latency is not None else config.latency,
        host=args.host,
        port=args.port,
        keep_messages=not args.no_messages,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        await stop.wait()
    print(json.dumps({"requests": len(fake.requests)}), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=None, help="seconds before each answer")
    parser.add_argument("--config", help="JSON file: {scripts, default, latency}")
    parser.add_argument(
        "--no-messages", action="store_true", help="record requests without their messages"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = FakeConfig()
    if args.config:
        config = TypeAdapter(FakeConfig).validate_json(Path(args.config).read_bytes())
    asyncio.run(_serve(args, config))


if __name__ == "__main__":
    main()
