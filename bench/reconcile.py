"""Reconcile benchmark on the local control plane (`make bench-reconcile`).

Prints and writes bench/results/reconcile.json:
- apply -> Job created latency over sequential AnalysisJobs (p50, p99),
  observed through a watch on Jobs, as a client would see it;
- a burst of AnalysisJobs to as many Jobs (wall time, duplicates);
- operator RSS idle and with thousands of AnalysisJobs;
- operator process start to /readyz 200.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.objects import analysisjob
from tests.cluster.operator_process import OperatorProcess, install_rbac

from bench.common import (
    JobWatch,
    kube_version,
    machine,
    new_namespace,
    percentile,
    write_results,
)
from fondation_contracts import analysisjob as aj
from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS, JOBS

RESULTS = Path(__file__).resolve().parent / "results" / "reconcile.json"
COMMAND = "make bench-reconcile"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def sequential_latency(kube: KubeClient, namespace: str, count: int) -> list[float]:
    watch = JobWatch(kube, namespace)
    await watch.start()
    latencies = []
    try:
        for i in range(count):
            name = f"seq-{i:04d}"
            arrival = watch.arrival(name)
            t0 = time.perf_counter()
            await kube.create(ANALYSISJOBS, analysisjob(name), namespace)
            latencies.append((await asyncio.wait_for(arrival, 30)) - t0)
    finally:
        await watch.stop()
    return latencies


async def burst(kube: KubeClient, namespace: str, count: int) -> tuple[float, int]:
    watch = JobWatch(kube, namespace)
    await watch.start()
    names = [f"burst-{i:05d}" for i in range(count)]
    arrivals = [watch.arrival(n) for n in names]
    gate = asyncio.Semaphore(64)

    async def create(name: str) -> None:
        async with gate:
            await kube.create(ANALYSISJOBS, analysisjob(name), namespace)

    t0 = time.perf_counter()
    await asyncio.gather(*(create(n) for n in names))
    done = await asyncio.wait_for(asyncio.gather(*arrivals), 600)
    elapsed = max(done) - t0
    jobs = await kube.list(JOBS, namespace, label_selector=aj.LABEL_ANALYSISJOB)
    per_owner = Counter(j["metadata"]["labels"][aj.LABEL_ANALYSISJOB] for j in jobs)
    duplicates = sum(c - 1 for c in per_owner.values()) + sum(
        c - 1 for c in watch.counts.values() if c > 1
    )
    await watch.stop()
    return elapsed, duplicates


def start_to_ready(op: OperatorProcess, tries: int) -> float:
    times = []
    for _ in range(tries):
        op.stop()
        t0 = time.perf_counter()
        op.start(wait_ready=False)
        while True:
            try:
                with urllib.request.urlopen(f"{op.health_url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.005)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def settle_rss(pid: int, seconds: float = 5.0) -> float:
    """RSS after the process has been quiet for a while (max of the last samples)."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(rss_mb(pid))
        await asyncio.sleep(0.25)
    return max(samples[-8:])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with ControlPlane() as cp:
        assert cp.binary is not None
        kubernetes_version = await asyncio.to_thread(kube_version, cp.binary)
        kubeconfig = install_rbac(cp)
        op = OperatorProcess(kubeconfig, cp.workdir / "operator.log")
        op.start()
        async with KubeClient(kube_config.from_kubeconfig(cp.kubeconfig)) as kube:
            ready_s = start_to_ready(op, args.ready_tries)
            assert op.popen is not None
            idle = await settle_rss(op.popen.pid)
            print(f"start to /readyz: {ready_s * 1000:.0f} ms; idle RSS {idle:.1f} MB")

            ns = await new_namespace(kube, "bench-seq")
            lat = await sequential_latency(kube, ns, args.sequential)
            p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
            print(f"apply->Job over {len(lat)} sequential: p50 {p50:.1f} ms, p99 {p99:.1f} ms")

            ns = await new_namespace(kube, "bench-burst")
            burst_s, dups = await burst(kube, ns, args.burst)
            print(f"burst of {args.burst}: {burst_s:.1f} s to all Jobs, {dups} duplicates")

            ns = await new_namespace(kube, "bench-many")
            remaining = max(0, args.many - args.sequential - args.burst)
            await burst(kube, ns, remaining)
            assert op.popen is not None
            many = await settle_rss(op.popen.pid, 8.0)
            print(f"RSS with {args.many} AnalysisJobs: {many:.1f} MB")
        op.stop()
    return {
        "apply_to_job_p50_ms": round(p50, 1),
        "apply_to_job_p99_ms": round(p99, 1),
        "burst_1000_s": round(burst_s, 2),
        "burst_duplicates": dups,
        "idle_rss_mb": round(idle, 1),
        "rss_5000_mb": round(many, 1),
        "start_to_ready_s": round(ready_s, 3),
        "sequential_count": args.sequential,
        "burst_count": args.burst,
        "analysisjobs_for_rss": args.many,
        "command": COMMAND,
        "machine": machine(kubernetes_version),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile")
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--many", type=int, default=5000)
    parser.add_argument("--ready-tries", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
