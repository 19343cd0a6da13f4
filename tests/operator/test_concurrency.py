"""The cluster-wide cap: beyond it AnalysisJobs wait Queued, first in first out
within a namespace, round-robin between namespaces."""

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


async def test_the_cap_is_shared_round_robin_between_namespaces(
    kube: KubeClient,
    namespace: str,
    second_namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """`crowd` queued six AnalysisJobs before `few` queued two; with a cap of
    two, each namespace gets a slot at once, and a slot freed in `crowd` goes
    to the namespace with fewer Jobs in flight."""
    crowd, few = namespace, second_namespace
    for i in range(6):
        await create_aj(kube, crowd, f"c{i}")
    for i in range(2):
        await create_aj(kube, few, f"f{i}")
    operator = operator_factory(
        FONDATION_NAMESPACES=f"{crowd},{few}", FONDATION_MAX_CONCURRENT_JOBS="2"
    )

    async def started(count: int) -> list[str] | None:
        jobs = [*await jobs_of(kube, crowd), *await jobs_of(kube, few)]
        names = sorted(j["metadata"]["name"] for j in jobs)
        return names if len(names) == count else None

    assert await eventually(lambda: started(2), what="two Jobs") == ["aj-c0-1", "aj-f0-1"]
    # `crowd` frees its slot: it has none in flight, `few` has one, so `crowd` again.
    await succeed_job(operator, kube, crowd, "c0", "aj-c0-1")
    assert "aj-c1-1" in await eventually(lambda: started(3), what="a third Job")
    # `few` frees its slot: its second AnalysisJob goes before crowd's c2..c5.
    await succeed_job(operator, kube, few, "f0", "aj-f0-1")
    assert "aj-f1-1" in await eventually(lambda: started(4), what="a fourth Job")
    phases = await _phases(kube, crowd, [f"c{i}" for i in range(2, 6)])
    assert set(phases.values()) == {"Queued"}
