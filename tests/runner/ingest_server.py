"""A stand-in for the operator's ingest endpoint, on loopback."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    what: str
    namespace: str
    name: str
    authorization: str
    body: dict[str, Any]


@dataclass
class IngestServer:
    statuses: list[int] = field(default_factory=list)
    """Status of each successive answer; 200 once the list is used up."""
    retry_after: str | None = None
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of(self, what: str) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.what == what]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/namespaces/{namespace}/analysisjobs/{name}/{what}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port or free_port()).start()
        self.port = self._bound_port()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _bound_port(self) -> int:
        assert self._runner is not None
        [site] = self._runner.sites
        server = site._server
        assert server is not None
        port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return port

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Received(
                what=request.match_info["what"],
                namespace=request.match_info["namespace"],
                name=request.match_info["name"],
                authorization=request.headers.get("Authorization", ""),
                body=json.loads(await request.text()),
            )
        )
        status = (
            self.statuses[len(self.requests) - 1]
            if len(self.requests) <= len(self.statuses)
            else 200
        )
        headers = {"Retry-After": self.retry_after} if self.retry_after and status != 200 else {}
        return web.json_response({"status": status}, status=status, headers=headers)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
