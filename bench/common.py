"""Helpers shared by the benchmarks: percentiles, a Job-arrival watch,
namespaces, and writing results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fondation_contracts import analysisjob as aj
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import JOBS, NAMESPACES, Resource


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class JobWatch:
    """Arrival time of each Job (ADDED) in a namespace, by owner name.

    With `resource` and `reached`, the first time an object of that resource
    (a runner pod) is seen in a state that `reached` accepts (Running).
    """

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        resource: Resource = JOBS,
        reached: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.resource = resource
        self.reached = reached
        self.seen: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self.ready.wait()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def arrival(self, owner: str) -> asyncio.Future[float]:
        fut = asyncio.get_running_loop().create_future()
        if owner in self.seen:
            fut.set_result(self.seen[owner])
        else:
            self.waiters[owner] = fut
        return fut

    async def _run(self) -> None:
        # Watch from "now": list once for the resourceVersion, then stream.
        path = self.resource.path(self.namespace)
        page = await self.kube.request("GET", path, params={"limit": "1"})
        params = {
            "watch": "1",
            "labelSelector": aj.LABEL_ANALYSISJOB,
            "resourceVersion": page["metadata"]["resourceVersion"],
        }
        self.ready.set()
        async for event in self.kube.stream(path, params, read_timeout=3600):
            now = time.perf_counter()
            kind = event.get("type")
            if self.reached is None:
                if kind != "ADDED":
                    continue
            elif kind not in ("ADDED", "MODIFIED") or not self.reached(event["object"]):
                continue
            owner = event["object"]["metadata"]["labels"][aj.LABEL_ANALYSISJOB]
            self.counts[owner] += 1
            self.seen.setdefault(owner, now)
            fut = self.waiters.pop(owner, None)
            if fut is not None and not fut.done():
                fut.set_result(now)


async def new_namespace(kube: KubeClient, name: str) -> str:
    await kube.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


def kube_version(binary: Path) -> str:
    return subprocess.run(
        [str(binary), "kube-apiserver", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()


def machine(kubernetes_version: str) -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kubernetes": kubernetes_version,
    }


def write_results(out: Path, result: dict[str, Any]) -> None:
    """Write `bench/results/<name>.json` and print it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
