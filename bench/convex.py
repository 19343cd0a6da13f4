"""Convex bridge benchmark on the local control plane and the Convex emulator.

    .venv/bin/python -m bench.convex

Prints and writes bench/results/convex.json:
- idle_calls_per_min: Convex function calls the bridge makes with nothing to
  do, counted by a loopback proxy between the operator and the emulator;
- pickup_p50_s / pickup_p99_s: job inserted in Convex -> its runner Job
  created, over jobs inserted at random (Poisson) moments, at the default
  poll interval (1 s), seen through a watch on Jobs;
- claim_rate_per_s: a queue of jobs that all become claimable at the same
  instant, until every one has its Job and Convex shows it `running` (the
  first status mirrored from its AnalysisJob).

The operator runs as its service account, as in production; pods stay
Pending (no kubelet), which is all the pickup path needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tests.cluster.controlplane import ControlPlane
from tests.cluster.convex_emulator import ConvexEmulator
from tests.cluster.operator_process import OperatorProcess, install_rbac

from bench.common import (
    JobWatch,
    kube_version,
    machine,
    new_namespace,
    percentile,
    write_results,
)
from fondation_operator.convexbridge.analysisjobs import name_for
from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient

RESULTS = Path(__file__).resolve().parent / "results" / "convex.json"
COMMAND = ".venv/bin/python -m bench.convex"
REPO = "https://example.com/acme/widgets.git"


class CountingProxy:
    """Forwards Convex HTTP API calls to the emulator, counting them by function."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/api/{kind}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def total(self) -> int:
        return sum(self.calls.values())

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.calls[str(json.loads(body).get("path"))] += 1
        except (ValueError, AttributeError):
            self.calls["?"] += 1
        assert self._session is not None
        async with self._session.post(
            f"{self.upstream}/api/{request.match_info['kind']}",
            data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() in _FORWARDED},
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                content_type="application/json",
            )


_FORWARDED = {"authorization", "content-type"}


def enqueue(emulator: ConvexEmulator, **args: Any) -> str:
    job_id = emulator.call("mutation", "jobs:enqueue", {"repositoryUrl": REPO, **args})
    assert isinstance(job_id, str)
    return job_id


async def wait_bridge_ready(op: OperatorProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "Convex deployment speaks the" not in op.log_path.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bridge not ready:\n{op.tail()}")
        await asyncio.sleep(0.05)


async def idle_calls_per_min(proxy: CountingProxy, seconds: float) -> float:
    before = proxy.total()
    await asyncio.sleep(seconds)
    return (proxy.total() - before) * 60.0 / seconds


async def pickup_latencies(
    kube: KubeClient, emulator: ConvexEmulator, namespace: str, count: int, rate: float
) -> list[float]:
    """Jobs inserted at Poisson moments (`rate` per second); each one's pickup."""
    watch = JobWatch(kube, namespace)
    await watch.start()
    rng = random.Random(20261124)

    async def one() -> float:
        t0 = time.perf_counter()
        job_id = await asyncio.to_thread(enqueue, emulator)
        arrived = await asyncio.wait_for(watch.arrival(name_for(job_id, 1)), 60)
        return arrived - t0

    tasks = []
    try:
        for _ in range(count):
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(rng.expovariate(rate))
        return list(await asyncio.gather(*tasks))
    finally:
        await watch.stop()


async def queue_drain(
    kube: KubeClient, emulator: ConvexEmulator, namespace: str, count: int
) -> tuple[float, float]:
    """`count` jobs claimable at the same instant: (s to all Jobs, s to all mirrored)."""
    watch = JobWatch(kube, namespace)
    await watch.start()
    try:
        start_ms = int(time.time() * 1000) + 5_000
        job_ids = [await asyncio.to_thread(enqueue, emulator, runAt=start_ms) for _ in range(count)]
        arrivals = [watch.arrival(name_for(j, 1)) for j in job_ids]
        await asyncio.sleep(max(0.0, start_ms / 1000 - time.time()))
        t0 = time.perf_counter()
        jobs_done = max(await asyncio.wait_for(asyncio.gather(*arrivals), 300)) - t0

        def statuses() -> list[str]:
            return [emulator.call("query", "jobs:get", {"jobId": j})["status"] for j in job_ids]

        while True:
            if all(s == "running" for s in await asyncio.to_thread(statuses)):
                return jobs_done, time.perf_counter() - t0
            await asyncio.sleep(0.05)
    finally:
        await watch.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with ControlPlane() as cp, ConvexEmulator() as emulator:
        assert cp.binary is not None
        kubernetes_version = await asyncio.to_thread(kube_version, cp.binary)
        kubeconfig = install_rbac(cp)
        proxy = CountingProxy(emulator.url)
        await proxy.start()
        key_file = cp.workdir / "convex-deploy-key"
        key_file.write_text(emulator.deploy_key)
        try:
            async with KubeClient(kube_config.from_kubeconfig(cp.kubeconfig)) as kube:
                namespace = await new_namespace(kube, "bench-convex")
                op = OperatorProcess(
                    kubeconfig,
                    cp.workdir / "operator.log",
                    env={
                        "FONDATION_NAMESPACES": namespace,
                        "CONVEX_URL": proxy.url,
                        "CONVEX_DEPLOY_KEY_FILE": str(key_file),
                        "CONVEX_BACKEND": "offline",
                    },
                )
                op.start()
                try:
                    await wait_bridge_ready(op)
                    idle = await idle_calls_per_min(proxy, args.idle_seconds)
                    print(f"idle: {idle:.1f} Convex calls per minute")

                    lat = await pickup_latencies(
                        kube, emulator, namespace, args.pickups, args.arrival_rate
                    )
                    p50, p99 = percentile(lat, 50), percentile(lat, 99)
                    print(f"pickup over {len(lat)} jobs: p50 {p50:.3f} s, p99 {p99:.3f} s")

                    jobs_s, mirrored_s = await queue_drain(kube, emulator, namespace, args.queued)
                    rate = args.queued / mirrored_s
                    print(
                        f"{args.queued} queued jobs: all Jobs in {jobs_s:.2f} s, all mirrored "
                        f"in {mirrored_s:.2f} s ({rate:.1f} jobs/s)"
                    )
                finally:
                    op.stop()
        finally:
            await proxy.stop()
    return {
        "pickup_p50_s": round(p50, 3),
        "pickup_p99_s": round(p99, 3),
        "claim_rate_per_s": round(rate, 1),
        "idle_calls_per_min": round(idle, 1),
        "pickup_count": args.pickups,
        "pickup_arrival_rate_per_s": args.arrival_rate,
        "queued_count": args.queued,
        "queued_all_jobs_s": round(jobs_s, 2),
        "queued_all_mirrored_s": round(mirrored_s, 2),
        "idle_window_s": args.idle_seconds,
        "poll_interval_s": 1.0,
        "calls_by_function": dict(sorted(proxy.calls.items())),
        "command": COMMAND,
        "machine": machine(kubernetes_version),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.convex")
    parser.add_argument("--pickups", type=int, default=100)
    parser.add_argument("--arrival-rate", type=float, default=2.0, help="pickup jobs per second")
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
