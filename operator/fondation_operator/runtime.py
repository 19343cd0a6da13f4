"""Wires kopf to the reconciler: indices as the cluster view, watch events
as work-queue keys, startup and cleanup of the operator's own tasks."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any

import kopf

from fondation_contracts import analysisjob as aj
from fondation_operator import memory, tokens
from fondation_operator.cache import ClusterView
from fondation_operator.convexbridge import ConvexBridge
from fondation_operator.events import EventRecorder
from fondation_operator.health import HealthServer
from fondation_operator.httpserver import ConnectionLimits
from fondation_operator.ingest import IngestLimits, IngestServer
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.config import ConnectionConfig
from fondation_operator.kube.errors import ApiError, NotFound
from fondation_operator.kube.informer import Informer
from fondation_operator.kube.resources import ANALYSISJOBS, CRDS, JOBS
from fondation_operator.metrics import Metrics
from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob
from fondation_operator.reconcile import Reconciler
from fondation_operator.settings import Settings
from fondation_operator.workqueue import WorkQueue

log = logging.getLogger("fondation.operator")
CRD_NAME = f"{aj.PLURAL}.{aj.GROUP}"
ANALYSISJOB_NAME_ANNOTATION = "fondation.dev/analysisjob-name"
_TERMINAL = {p.value for p in aj.Phase if p.terminal}


class IndexView:
    """kopf's AnalysisJob index and the Job informer, as a ClusterView."""

    def __init__(self, crs: kopf.Index[Any, Any], jobs: Informer[ObservedJob]) -> None:
        self._crs, self._jobs = crs, jobs

    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None:
        store = self._crs.get(key)
        return next(iter(store), None) if store else None

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]:
        for store in self._crs.values():
            yield from store

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]:
        return self._jobs.group(key)

    def jobs(self) -> Iterable[ObservedJob]:
        return self._jobs.values()


class Operator:
    """Everything the operator process owns, built once at start."""

    def __init__(self, settings: Settings, connection: ConnectionConfig) -> None:
        self.settings = settings
        self.connection = connection
        self.client = KubeClient(connection)
        self.metrics = Metrics()
        self.events = EventRecorder(self.client)
        self.view: IndexView | None = None
        self.reconciler: Reconciler | None = None
        self.queue: WorkQueue[Key] | None = None
        self.jobs: Informer[ObservedJob] | None = None
        self.health = HealthServer(self.metrics, lambda: self.view)
        key = settings.token_key.get_secret_value().encode()
        if not key:
            log.warning("no FONDATION_TOKEN_KEY: ingest tokens will not survive a restart")
            key = tokens.new_key()
        self._token_key = key
        self.ingest: IngestServer | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self.bridge = ConvexBridge.from_environment(
            os.environ,
            client=self.client,
            operator_settings=settings,
            operator_namespace=connection.namespace,
            view=lambda: self.view,
        )
        if self.bridge is not None:
            self.health.worker = self.bridge.health

    # ---- kopf registry ---------------------------------------------------

    def registry(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            c = self.connection
            return kopf.ConnectionInfo(
                server=c.server,
                ca_path=c.ca_path,
                insecure=c.insecure,
                token=c.current_token(),
                certificate_path=c.cert_path,
                private_key_path=c.key_path,
                default_namespace=c.namespace,
                expiration=None,
            )

        @kopf.on.startup(registry=registry)
        async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.scanning.disabled = True
            settings.posting.enabled = False
            settings.batching.batch_window = 0.005
            settings.batching.idle_timeout = 5.0
            settings.watching.server_timeout = 300
            settings.networking.request_timeout = 60
            await self.start()

        @kopf.on.cleanup(registry=registry)
        async def cleanup(**_: Any) -> None:
            await self.stop()

        @kopf.index(aj.GROUP, aj.VERSION, aj.PLURAL, registry=registry, id="analysisjobs_idx")
        def analysisjobs_idx(body: kopf.Body, **_: Any) -> dict[Key, ObservedAnalysisJob]:
            cr = ObservedAnalysisJob.from_body(body)
            return {cr.key: cr}

        def bind(kwargs: dict[str, Any]) -> tuple[Reconciler, WorkQueue[Key]]:
            if self.view is None:
                assert self.jobs is not None
                self.view = IndexView(kwargs["analysisjobs_idx"], self.jobs)
                assert self.reconciler is not None
                self.reconciler.view = self.view
            self.health.ready = True
            assert self.reconciler is not None and self.queue is not None
            return self.reconciler, self.queue

        @kopf.on.event(aj.GROUP, aj.VERSION, aj.PLURAL, registry=registry)
        async def on_analysisjob(
            type: str, namespace: str | None, name: str, **kwargs: Any
        ) -> None:
            reconciler, queue = bind(kwargs)
            if self.bridge is not None:
                cr = ObservedAnalysisJob.from_body(kwargs["body"])
                self.bridge.notify(cr, deleted=type == "DELETED")
            key = (namespace or "", name)
            if type == "DELETED":
                reconciler.forget(key)
                self._wake(reconciler, queue)
                return
            queue.add(key)
            status = kwargs.get("status") or {}
            if status.get("phase") in _TERMINAL or status.get("retryAt"):
                # A slot was freed, or given up while the namespace's quota is full.
                self._wake(reconciler, queue)

        return registry

    def _on_job(self, kind: str, job: ObservedJob) -> None:
        """A runner Job appeared, changed or vanished: its AnalysisJob may move on."""
        assert self.reconciler is not None and self.queue is not None
        self.reconciler.admission.observed(job.key)
        self.queue.add(job.key)
        if kind == "DELETED" or job.finished:
            self._wake(self.reconciler, self.queue)

    @staticmethod
    def _wake(reconciler: Reconciler, queue: WorkQueue[Key]) -> None:
        for key in reconciler.wake_queue():
            queue.add(key)

    # ---- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        self.client.open()
        await self._check_api()
        placeholder: ClusterView = _EmptyView()
        self.reconciler = Reconciler(
            self.client, self.settings, placeholder, self.events, self.metrics, self._token_key
        )
        self.queue = WorkQueue(
            self.reconciler.reconcile,
            workers=self.settings.workers,
            on_done=lambda _k, s, ok: self.metrics.reconciled(s, ok),
        )
        self.jobs = Informer(
            self.client,
            JOBS,
            ObservedJob.from_body,
            group_by=lambda job: job.key,
            on_change=self._on_job,
            namespaces=self.settings.namespaces,
            label_selector=aj.LABEL_ANALYSISJOB,
        )
        self.jobs.start()
        # Jobs in flight must be complete before the first admission decision.
        await asyncio.wait_for(self.jobs.synced.wait(), timeout=120)
        self.queue.start()
        self.events.start()
        await self.health.start(self.settings.bind_address, self.settings.health_port)
        self.ingest = IngestServer(
            self.reconciler,
            self._token_key,
            limits=IngestLimits(
                max_course_bytes=self.settings.ingest_max_course_bytes,
                max_concurrent_uploads=self.settings.ingest_max_concurrent_uploads,
                body_timeout=self.settings.ingest_body_timeout_seconds,
                connections=ConnectionLimits(
                    header_timeout=self.settings.ingest_header_timeout_seconds,
                    max_per_peer=self.settings.ingest_max_connections_per_peer,
                ),
            ),
            indexed=lambda: self.view is not None,
        )
        await self.ingest.start(self.settings.bind_address, self.settings.ingest_port)
        self._trimmer = asyncio.create_task(memory.trim_periodically(), name="memory-trim")
        if self.bridge is not None:
            await self.bridge.start()
        if not await self._any_analysisjob():
            self.health.ready = True
        log.info(
            "operator started: %s, max concurrent jobs %s, health on :%d, ingest on :%d",
            ", ".join(self.settings.namespaces) or "all namespaces",
            self.settings.max_concurrent_jobs or "unlimited",
            self.health.port,
            self.ingest.port,
        )

    async def stop(self) -> None:
        if self._trimmer is not None:
            self._trimmer.cancel()
        if self.bridge is not None:
            await self.bridge.stop()
        if self.queue is not None:
            await self.queue.stop()
        if self.jobs is not None:
            await self.jobs.stop()
        await self.events.stop()
        if self.ingest is not None:
            await self.ingest.stop()
        await self.health.stop()
        await self.client.close()

    async def _check_api(self) -> None:
        """Fail at start, with a clear message, if the CRD is missing."""
        try:
            await self.client.get(CRDS, CRD_NAME)
        except NotFound:
            raise kopf.PermanentError(
                f"CRD {CRD_NAME} is not installed: kubectl apply -f crds/analysisjob.yaml"
            ) from None
        except ApiError as exc:
            if exc.status != 403:
                raise

    async def _any_analysisjob(self) -> bool:
        namespaces: list[str | None] = [*self.settings.namespaces] or [None]
        for ns in namespaces:
            page = await self.client.request("GET", ANALYSISJOBS.path(ns), params={"limit": "1"})
            if page.get("items"):
                return True
        return False


class _EmptyView:
    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None:
        return None

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]:
        return ()

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]:
        return ()

    def jobs(self) -> Iterable[ObservedJob]:
        return ()
