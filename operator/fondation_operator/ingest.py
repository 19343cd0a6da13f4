"""The ingest endpoint: where runner pods report progress and their course.

Runner pods hold no Kubernetes rights; this endpoint is their only channel,
so it trusts nothing: the per-job token is checked in constant time before
the body is read, bodies are size-limited and validated against the
contracts, a report for another attempt or a finished job is refused, and
nothing is written unless all of that passes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from fondation_contracts.course import Course
from fondation_contracts.ingest import ATTEMPT_HEADER, ProgressEvent
from fondation_operator import tokens
from fondation_operator.course_store import CourseTooLarge
from fondation_operator.httpserver import Server
from fondation_operator.observed import ObservedAnalysisJob
from fondation_operator.reconcile import Reconciler

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class IngestServer:
    def __init__(
        self,
        reconciler: Reconciler,
        key: bytes,
        *,
        max_course_bytes: int,
        indexed: Callable[[], bool],
    ) -> None:
        self.reconciler = reconciler
        self._indexed = indexed
        self._key = key
        self.max_course_bytes = max_course_bytes
        self._server = Server(self.app())

    @property
    def port(self) -> int:
        return self._server.port

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_course_bytes)
        base = "/v1/namespaces/{namespace}/analysisjobs/{name}"
        app.router.add_post(base + "/events", self._events)
        app.router.add_post(base + "/course", self._course)
        return app

    async def start(self, host: str, port: int) -> None:
        await self._server.start(host, port)

    async def stop(self) -> None:
        await self._server.stop()

    # ---- checks ------------------------------------------------------------

    def _authorise(self, request: web.Request) -> ObservedAnalysisJob | web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not (_NAME.match(namespace) and _NAME.match(name)):
            return _error(404, "no such AnalysisJob")
        if not self._indexed():
            # Just restarted: the job is probably known, just not yet listed.
            return web.json_response(
                {"error": "starting"}, status=503, headers={"Retry-After": "1"}
            )
        header = request.headers.get("Authorization", "")
        presented = header[7:] if header.startswith("Bearer ") else ""
        cr = self.reconciler.current((namespace, name))
        # Same answer for an unknown job and a wrong token: no probing for names.
        if cr is None or not presented or not tokens.verify(self._key, cr.uid, presented):
            return _error(401, "invalid token")
        attempt = request.headers.get(ATTEMPT_HEADER)
        if attempt is not None and attempt != str(cr.status.attempt):
            return _error(409, f"attempt {attempt} is not the current attempt")
        if cr.status.phase.terminal:
            return _error(409, f"the AnalysisJob is {cr.status.phase.value}")
        return cr

    async def _body(self, request: web.Request, limit: int) -> Any:
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        # `read(n)` returns what is buffered, not n bytes: read to the end.
        raw = bytearray()
        while chunk := await request.content.readany():
            raw += chunk
            if len(raw) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"malformed JSON: {exc}"}),
                content_type="application/json",
            ) from None

    @staticmethod
    def _invalid(exc: ValidationError) -> web.Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
            for e in exc.errors(include_input=False)[:20]
        ]
        return web.json_response({"error": "invalid body", "fields": errors}, status=422)

    # ---- handlers ----------------------------------------------------------

    async def _events(self, request: web.Request) -> web.Response:
        cr = self._authorise(request)
        if isinstance(cr, web.Response):
            return cr
        try:
            event = ProgressEvent.model_validate(await self._body(request, MAX_EVENT_BYTES))
        except ValidationError as exc:
            return self._invalid(exc)
        await self.reconciler.record_progress(cr, event)
        return web.json_response({"accepted": True}, status=202)

    async def _course(self, request: web.Request) -> web.Response:
        cr = self._authorise(request)
        if isinstance(cr, web.Response):
            return cr
        try:
            course = Course.model_validate(await self._body(request, self.max_course_bytes))
        except ValidationError as exc:
            return self._invalid(exc)
        slugs = [d.slug for d in course.documents]
        if len(set(slugs)) != len(slugs):
            return _error(422, "document slugs must be unique")
        try:
            await self.reconciler.record_course(cr, course)
        except CourseTooLarge as exc:
            return _error(413, str(exc))
        return web.json_response({"accepted": True, "documents": len(course.documents)}, status=201)
