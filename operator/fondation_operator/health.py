"""/healthz, /readyz, /metrics and /health on the health port.

Liveness means the event loop answers. Readiness means the operator has
logged in, found its CRD and filled its indices from a full listing: before
that, its view of Jobs in flight would be incomplete.

`GET /health` answers as Fondation's worker does on the same port (8081),
in JSON, so the probes and dashboards of a Fondation deployment keep
working when the operator replaces its worker: `status` (`healthy` or
`unhealthy`, with 200 or 503), `uptime` in seconds, and, with the Convex
bridge on, `workerId`, `activeJobs`, `maxConcurrentJobs` and whether Convex
answers (`convex.reachable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from fondation_operator.cache import ClusterView
from fondation_operator.httpserver import Server
from fondation_operator.metrics import Metrics


class HealthServer:
    def __init__(self, metrics: Metrics, view: Callable[[], ClusterView | None]) -> None:
        self.metrics = metrics
        self._view = view
        self.ready = False
        self.worker: Callable[[], dict[str, Any]] | None = None
        """The Convex bridge's part of /health, when it is on."""
        self._started = time.monotonic()
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._server = Server(app)

    @property
    def port(self) -> int:
        return self._server.port

    async def start(self, host: str, port: int) -> None:
        await self._server.start(host, port)

    async def stop(self) -> None:
        await self._server.stop()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            text=self.metrics.render(self._view()),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def _health(self, _: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "healthy" if self.ready else "unhealthy",
            "uptime": round(time.monotonic() - self._started, 3),
        }
        if self.worker is not None:
            body.update(self.worker())
        return web.json_response(body, status=200 if self.ready else 503)
