"""A Git host and a process kubelet for end-to-end runs on the test control plane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from fondation_operator.kube.client import KubeClient
from tests.cluster.controlplane import ROOT
from tests.cluster.git_server import GitServer
from tests.cluster.process_kubelet import ProcessKubelet

SAMPLE_REPO = ROOT / "tests" / "fixtures" / "sample-repo"


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitServer]:
    server = GitServer()
    server.start()
    server.sample_commit = server.publish(SAMPLE_REPO, "sample")  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
async def kubelet(
    kube: KubeClient, namespace: str, git_server: GitServer, tmp_path: Path
) -> AsyncIterator[Callable[..., ProcessKubelet]]:
    """Starts a process kubelet on the test namespace; extra env may be given once."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start(**extra_env: str) -> ProcessKubelet:
        node = ProcessKubelet(kube, tmp_path / "node", {**git_server.client_env(), **extra_env})
        tasks.append(asyncio.create_task(node.serve(namespace, stop)))
        return node

    yield start
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
