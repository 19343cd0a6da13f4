"""/healthz, /readyz and /metrics on the health port.

Liveness means the event loop answers. Readiness means the operator has
logged in, found its CRD and filled its indices from a full listing: before
that, its view of Jobs in flight would be incomplete.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from fondation_operator.cache import ClusterView
from fondation_operator.httpserver import Server
from fondation_operator.metrics import Metrics


class HealthServer:
    def __init__(self, metrics: Metrics, view: Callable[[], ClusterView | None]) -> None:
        self.metrics = metrics
        self._view = view
        self.ready = False
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
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
