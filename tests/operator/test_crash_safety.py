"""SIGKILL the operator at random moments while 100 AnalysisJobs are being
reconciled (and their pods fail or succeed); after restarts there is exactly
one Job per attempt, the cap was never exceeded, and nothing is stuck."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from fondation_contracts import analysisjob as aj
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS, JOBS, PODS
from tests.cluster.objects import (
    RetryableReport,
    analysisjob,
    eventually,
    finish_pod,
    report_course,
)
from tests.cluster.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

COUNT = 100
CAP = 30
SEED = 20261124


async def _report(
    operator: OperatorProcess, kube: KubeClient, namespace: str, name: str, stop: asyncio.Event
) -> None:
    """Report a course as the runner does: retrying while the operator restarts."""
    while not stop.is_set():
        try:
            await report_course(operator, kube, namespace, name)
            return
        except (aiohttp.ClientError, RetryableReport):
            await asyncio.sleep(0.1)


async def _kubelet(
    *,
    kube: KubeClient,
    namespace: str,
    rng: random.Random,
    stop: asyncio.Event,
    doomed: set[str],
    operator: OperatorProcess,
) -> int:
    """Finish pods as a kubelet would: first attempts of `doomed` fail, all else
    reports a course and succeeds."""
    handled: set[str] = set()
    while not stop.is_set():
        pods = await kube.list(PODS, namespace, label_selector=aj.LABEL_ANALYSISJOB)
        fresh = [
            p
            for p in pods
            if p["metadata"]["name"] not in handled
            and (p.get("status") or {}).get("phase") == "Pending"
        ]
        rng.shuffle(fresh)
        for pod in fresh[: rng.randint(1, 8)]:
            labels = pod["metadata"]["labels"]
            fail = labels[aj.LABEL_ANALYSISJOB] in doomed and labels[aj.LABEL_ATTEMPT] == "1"
            if not fail:
                await _report(operator, kube, namespace, labels[aj.LABEL_ANALYSISJOB], stop)
            await finish_pod(
                kube,
                namespace,
                pod["metadata"]["name"],
                exit_code=1 if fail else 0,
                message="simulated failure" if fail else "",
            )
            handled.add(pod["metadata"]["name"])
        await asyncio.sleep(rng.uniform(0.05, 0.3))
    return len(handled)


async def _in_flight_sampler(kube: KubeClient, namespace: str, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        jobs = await kube.list(JOBS, namespace, label_selector=aj.LABEL_ANALYSISJOB)
        unfinished = [
            j
            for j in jobs
            if not any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in (j.get("status") or {}).get("conditions") or []
            )
        ]
        peak = max(peak, len(unfinished))
        await asyncio.sleep(0.1)
    return peak


async def test_sigkill_during_reconcile_leaves_one_job_per_attempt(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    rng = random.Random(SEED)
    names = [f"c{i:03d}" for i in range(COUNT)]
    doomed = set(rng.sample(names, COUNT // 3))
    operator = operator_factory(FONDATION_MAX_CONCURRENT_JOBS=str(CAP))

    stop = asyncio.Event()
    kubelet = asyncio.create_task(
        _kubelet(
            kube=kube, namespace=namespace, rng=rng, stop=stop, doomed=doomed, operator=operator
        )
    )
    sampler = asyncio.create_task(_in_flight_sampler(kube, namespace, stop))
    creating = asyncio.gather(
        *(kube.create(ANALYSISJOBS, analysisjob(n, retries=1), namespace) for n in names)
    )

    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        operator.kill()
        kills += 1
        operator.start(wait_ready=rng.random() < 0.5)
        if kills >= 8:
            break
    await creating

    async def all_terminal() -> list[dict[str, Any]] | None:
        items = await kube.list(ANALYSISJOBS, namespace)
        done = [i for i in items if (i.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
        return items if len(done) == COUNT else None

    try:
        items = await eventually(
            all_terminal, timeout=180, interval=0.5, what="every AnalysisJob to finish"
        )
    finally:
        stop.set()
        handled = await kubelet
        peak = await sampler
    assert kills == 8 and operator.starts == 9

    jobs = await kube.list(JOBS, namespace, label_selector=aj.LABEL_ANALYSISJOB)
    by_owner: dict[str, list[str]] = {}
    for job in jobs:
        by_owner.setdefault(job["metadata"]["labels"][aj.LABEL_ANALYSISJOB], []).append(
            job["metadata"]["name"]
        )
    for item in items:
        name = item["metadata"]["name"]
        status = item["status"]
        assert isinstance(status, dict)
        expected_attempts = 2 if name in doomed else 1
        assert status["phase"] == "Succeeded", (name, status)
        assert status["attempt"] == expected_attempts, (name, status)
        assert sorted(by_owner[name]) == [f"aj-{name}-{a}" for a in range(1, expected_attempts + 1)]
    assert len(jobs) == COUNT + len(doomed)
    assert handled == len(jobs)
    assert peak <= CAP, f"{peak} Jobs in flight with a cap of {CAP}"
