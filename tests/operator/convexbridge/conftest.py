"""Fixtures of the Convex bridge tests: a Convex emulator per test, and
operators with the bridge on, pointed at it.

Each test gets its own emulator (about a second to start) so that a job one
test leaves pending can never be claimed by the operator of another.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.convex_emulator import ConvexEmulator, FunctionSet
from tests.cluster.operator_process import OperatorProcess

BridgeOperators = Callable[..., OperatorProcess]


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[ConvexEmulator]:
    """The project's convex/ functions, or with `indirect` parametrisation
    ("fondation"), the fake of Fondation's own (tests/fakes/fondation_convex)."""
    functions: FunctionSet = getattr(request, "param", "project")
    with ConvexEmulator(functions=functions) as running:
        yield running


@pytest.fixture
def deploy_key_file(emulator: ConvexEmulator, tmp_path: Path) -> Path:
    """The deploy key as a mounted Secret would hold it."""
    path = tmp_path / "convex-deploy-key"
    path.write_text(emulator.deploy_key + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def bridge_operators(
    control_plane: ControlPlane,
    operator_kubeconfig: Path,
    namespace: str,
    emulator: ConvexEmulator,
    deploy_key_file: Path,
    tmp_path: Path,
) -> Iterator[BridgeOperators]:
    """Start operators (as their service account) with the bridge on; each is
    stopped by its PID at teardown. Logs at DEBUG, so the secret checks see
    everything the bridge could say."""
    started: list[OperatorProcess] = []

    def start(
        namespace_: str | None = None, *, deploy_key: bool = True, **env: str
    ) -> OperatorProcess:
        """`deploy_key=False`: as Fondation's worker, with no key (its functions are public)."""
        watched = namespace_ or namespace
        key = {"CONVEX_DEPLOY_KEY_FILE": str(deploy_key_file)} if deploy_key else {}
        op = OperatorProcess(
            operator_kubeconfig,
            control_plane.workdir / f"operator-{watched}-{len(started)}.log",
            env={
                "FONDATION_NAMESPACES": watched,
                "CONVEX_URL": emulator.url,
                "CONVEX_BACKEND": "offline",
                **key,
                **env,
            },
            args=["--log-level=DEBUG"],
        )
        started.append(op)
        op.start()
        return op

    yield start
    for op in started:
        op.stop()
        # Kept with pytest's temporary directories, for a look after a failure.
        with contextlib.suppress(OSError):
            shutil.copy(op.log_path, tmp_path / op.log_path.name)
