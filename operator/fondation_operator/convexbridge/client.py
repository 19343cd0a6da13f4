"""An asynchronous client for Convex's HTTP API, on aiohttp.

    POST {url}/api/query|mutation|action
    {"path": "jobs:claimOne", "args": {...}, "format": "json"}
    Authorization: Convex <deploy key>      (only when a key is configured:
                                             Fondation's functions are public)

A function's answer is `{"status": "success", "value"}` or `{"status":
"error", "errorMessage", "errorData"?}`, with HTTP 200 or, as the official
clients also accept, HTTP 560 ("the function failed"). Failures come out as
three types the bridge branches on, because they call for different actions:

- `ConvexFunctionError`: the function ran and refused (with a `code` when it
  is one of our ConvexError refusals): the job's business.
- `ConvexUnavailable`: no answer, a timeout, a 5xx or a 429: Convex is down
  or overloaded; retry later, never blame the job.
- `ConvexRequestRejected`: any other 4xx (bad deploy key, unknown route):
  a configuration problem; retry later too, and say so loudly.

Secrets never travel into messages: the deploy key and every `SecretStr`
argument are scrubbed from the texts these exceptions carry, because Convex
validator errors quote the arguments they refuse.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

log = logging.getLogger(__name__)

FunctionKind = Literal["query", "mutation", "action"]
STATUS_FUNCTION_FAILED = 560
_MISSING_FUNCTION_HINTS = (
    "could not find public function",
    "could not find function",
    "could not find module",
    "no such export",
    "is not a public function",
)


class ConvexError(Exception):
    """Base of the client's errors."""


class ConvexUnavailable(ConvexError):
    """No usable answer: network error, timeout, HTTP 5xx or 429."""


class ConvexRequestRejected(ConvexError):
    """HTTP 4xx outside a function's answer: bad deploy key, bad route, bad body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ConvexFunctionError(ConvexError):
    """The function ran and failed; `code` is set for ConvexError refusals."""

    def __init__(self, path: str, message: str, data: Any = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.data = data

    @property
    def code(self) -> str | None:
        if isinstance(self.data, dict):
            code = self.data.get("code")
            return code if isinstance(code, str) else None
        return None

    @property
    def missing_function(self) -> bool:
        """The deployment has no such function (as opposed to refusing the call)."""
        text = self.message.lower()
        return self.code is None and any(hint in text for hint in _MISSING_FUNCTION_HINTS)


class ConvexArgs(BaseModel):
    """Arguments of one function call: `wire()` is the only place secrets are revealed."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        revealed = _reveal(self.model_dump(mode="python", by_alias=True, exclude_none=True))
        assert isinstance(revealed, dict)
        return revealed

    def secrets(self) -> list[str]:
        return _secrets_in(self.model_dump(mode="python", exclude_none=True))


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def _secrets_in(value: Any) -> list[str]:
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secrets_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secrets_in(v)]
    return []


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """`value` (a text or JSON data) with every secret replaced by `[redacted]`."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


class FunctionAnswer(BaseModel):
    """The body of a function's answer."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: Literal["success", "error"]
    value: Any = None
    error_message: str = Field("", alias="errorMessage")
    error_data: Any = Field(None, alias="errorData")


class ConvexClient:
    """One connection pool to one Convex deployment; counts its calls by path."""

    def __init__(self, url: str, deploy_key: SecretStr | None, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._deploy_key = deploy_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"ConvexClient({self.url!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(self, path: str, args: ConvexArgs | Mapping[str, Any]) -> Any:
        return await self.call("query", path, args)

    async def mutation(self, path: str, args: ConvexArgs | Mapping[str, Any]) -> Any:
        return await self.call("mutation", path, args)

    async def action(self, path: str, args: ConvexArgs | Mapping[str, Any]) -> Any:
        return await self.call("action", path, args)

    async def call(
        self, kind: FunctionKind, path: str, args: ConvexArgs | Mapping[str, Any]
    ) -> Any:
        """Run one function; its value, or one of the three errors above."""
        if isinstance(args, ConvexArgs):
            payload, secrets = args.wire(), args.secrets()
        else:
            payload, secrets = dict(args), []
        if self._deploy_key is not None:
            secrets.append(self._deploy_key.get_secret_value())
        body = json.dumps({"path": path, "args": payload, "format": "json"})
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.calls[path] += 1
        headers = {"Content-Type": "application/json"}
        if self._deploy_key is not None:
            headers["Authorization"] = f"Convex {self._deploy_key.get_secret_value()}"
        try:
            async with self._session.post(
                f"{self.url}/api/{kind}", data=body.encode(), headers=headers
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = redact(str(exc) or type(exc).__name__, secrets)
            raise ConvexUnavailable(f"{path}: {detail}") from None
        return self._answer(path, status, text, secrets)

    @staticmethod
    def _answer(path: str, status: int, text: str, secrets: Sequence[str]) -> Any:
        if status in (200, STATUS_FUNCTION_FAILED):
            try:
                answer = FunctionAnswer.model_validate_json(text)
            except ValidationError:
                if status == 200:
                    raise ConvexUnavailable(f"{path}: unreadable answer") from None
                answer = None
            if answer is not None:
                if answer.status == "success":
                    return answer.value
                raise ConvexFunctionError(
                    path,
                    redact(answer.error_message, secrets),
                    redact(answer.error_data, secrets),
                )
        if status == 429 or status >= 500:
            raise ConvexUnavailable(f"{path}: HTTP {status}")
        raise ConvexRequestRejected(status, redact(text[:500], secrets))
