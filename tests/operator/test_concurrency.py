"""The cluster-wide cap: beyond it AnalysisJobs wait Queued, first in first out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fondation_operator.kube.client import KubeClient
from tests.cluster.objects import create_aj, eventually, get_aj, jobs_of, succeed_job
from tests.cluster.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster


async def _phases(kube: KubeClient, namespace: str, names: list[str]) -> dict[str, str]:
    bodies = await asyncio.gather(*(get_aj(kube, namespace, n) for n in names))
    return {b["metadata"]["name"]: (b.get("status") or {}).get("phase", "") for b in bodies}


async def test_cap_of_three_queues_the_rest_and_drains_in_creation_order(
    kube: KubeClient, namespace: str, operator_factory: Callable[..., OperatorProcess]
) -> None:
    operator = operator_factory(FONDATION_MAX_CONCURRENT_JOBS="3")
    # Reverse alphabetical names: FIFO must follow creation, not names.
    names = [f"q{9 - i}" for i in range(10)]
    for name in names:
        await create_aj(kube, namespace, name)

    async def settled() -> dict[str, str] | None:
        phases = await _phases(kube, namespace, names)
        values = list(phases.values())
        return phases if values.count("Running") == 3 and values.count("Queued") == 7 else None

    phases = await eventually(settled, what="3 Running and 7 Queued")
    assert [n for n in names if phases[n] == "Running"] == names[:3]
    assert len(await jobs_of(kube, namespace)) == 3
    assert operator.probe("/healthz") == 200
    metrics = operator.metrics()
    assert "fondation_analysisjobs_queued 7" in metrics
    assert "fondation_jobs_in_flight 3" in metrics

    started_order = names[:3]
    for finished in range(7):
        name = started_order[finished]
        await succeed_job(operator, kube, namespace, name, f"aj-{name}-1")

        async def next_started(count: int = 4 + finished) -> list[str] | None:
            jobs = await jobs_of(kube, namespace)
            owners = [j["metadata"]["labels"]["fondation.dev/analysisjob"] for j in jobs]
            return owners if len(owners) == count else None

        owners = await eventually(next_started, what=f"Job #{4 + finished}")
        (new,) = set(owners) - set(started_order)
        started_order.append(new)
        running = [n for n, p in (await _phases(kube, namespace, names)).items() if p == "Running"]
        assert len(running) <= 3
    assert started_order == names
