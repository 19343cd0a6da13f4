"""Fixtures that start processes: the test control plane and the operator.

The control plane is started once per session (about 4 s warm); each test
gets its own namespace, labelled to enforce the restricted Pod Security
Standard, and its own operator process watching only that namespace.

Tier 2 (tests marked `node`): the `node` fixture starts the real node of
tests/cluster/node.py once per session, with a control plane of its own, and
stops it leaving the machine as it was; when the machine cannot run a node,
those tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import NAMESPACES
from tests.cluster.controlplane import ControlPlane
from tests.cluster.node import Node, NodeUnavailable, preflight
from tests.cluster.operator_process import OperatorProcess, install_rbac

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        yield cp


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    try:
        preflight()
    except NodeUnavailable as exc:
        pytest.skip(f"tier-2 node unavailable on this machine: {exc}")
    real = Node()
    real.start()
    yield real
    problems = real.stop()
    assert not problems, f"the node left the machine changed: {problems}"


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    return install_rbac(control_plane)


@pytest.fixture(scope="session")
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    async with KubeClient(kube_config.from_kubeconfig(control_plane.kubeconfig)) as client:
        yield client


@pytest.fixture
async def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = f"t{next(_namespaces)}-{request.node.name.lower()[:40]}".replace("_", "-")
    name = "".join(c for c in name if c.isalnum() or c == "-").strip("-")
    await kube.create(
        NAMESPACES,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
    )
    yield name
    with contextlib.suppress(NotFound):
        await kube.delete(NAMESPACES, name)


@pytest.fixture
async def second_namespace(kube: KubeClient, namespace: str) -> AsyncIterator[str]:
    """Another namespace (another tenant, or another cluster), deleted afterwards."""
    name = f"{namespace[:50]}-b"
    await kube.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    with contextlib.suppress(NotFound):
        await kube.delete(NAMESPACES, name)


@pytest.fixture
def operator_factory(
    control_plane: ControlPlane, operator_kubeconfig: Path, namespace: str
) -> Iterator[type[OperatorProcess] | object]:
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        op = OperatorProcess(
            operator_kubeconfig,
            control_plane.workdir / f"operator-{namespace}-{len(started)}.log",
            env={"FONDATION_NAMESPACES": namespace, **env},
        )
        started.append(op)
        op.start()
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def operator(operator_factory: object) -> OperatorProcess:
    assert callable(operator_factory)
    op: OperatorProcess = operator_factory()
    return op
