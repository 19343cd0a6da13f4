"""The Convex emulator (tests/cluster/convex_emulator/) as a real OS process.

It serves the project's own convex/ functions (`functions="project"`) or the
fake of Fondation's own functions (`functions="fondation"`,
tests/fakes/fondation_convex/) over Convex's HTTP API on a loopback port, so
the operator's Convex bridge is tested against real functions without a
Convex deployment. As on Convex, calls without the deploy key
(`anonymous=True`) reach public functions only. Its database is saved to a file in
its state directory after every write, so `restart()` (even after a
SIGKILL) simulates an outage that loses nothing acknowledged, and a restart
keeps the same port so clients configured with `url` reconnect.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

ROOT = Path(__file__).resolve().parents[2]
SERVER = "tests/cluster/convex_emulator/server.ts"
VITE_NODE = ROOT / "node_modules" / ".bin" / "vite-node"
BOOTSTRAP = ROOT / "scripts" / "bootstrap-node.sh"
DEPLOY_KEY_ENV = "CONVEX_EMULATOR_DEPLOY_KEY"
READY_PREFIX = "listening on "

FunctionKind = Literal["query", "mutation", "action"]
FunctionSet = Literal["project", "fondation"]

_node_ready = False


def ensure_node_tooling() -> None:
    """Install the project's Node tooling once per test session (cheap when current)."""
    global _node_ready
    if not _node_ready:
        subprocess.run(["bash", str(BOOTSTRAP)], check=True, cwd=ROOT)
        _node_ready = True


class EmulatorFailed(RuntimeError):
    """The emulator process did not start or died."""


class ConvexFunctionError(Exception):
    """A Convex function answered with `status: "error"`."""

    def __init__(self, message: str, data: Any) -> None:
        super().__init__(message)
        self.data = data

    @property
    def code(self) -> str | None:
        """The `code` of a refusal raised with ConvexError, if any."""
        if isinstance(self.data, dict):
            code = self.data.get("code")
            return code if isinstance(code, str) else None
        return None


class ConvexEmulator:
    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        deploy_key: str | None = None,
        port: int = 0,
        startup_timeout: float = 60.0,
        functions: FunctionSet = "project",
    ) -> None:
        self.functions: FunctionSet = functions
        self._owns_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="convex-emulator-"))
        self._deploy_key = deploy_key or secrets.token_hex(24)
        self._port = port
        self._startup_timeout = startup_timeout
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def deploy_key(self) -> str:
        return self._deploy_key

    @property
    def state_file(self) -> Path:
        return self.state_dir / "database.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "emulator.log"

    @property
    def port(self) -> int:
        if self._port == 0:
            raise EmulatorFailed("the emulator has not started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self._popen is not None:
            raise EmulatorFailed("already running")
        ensure_node_tooling()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        env = {**os.environ, DEPLOY_KEY_ENV: self._deploy_key}
        command = [
            str(VITE_NODE),
            SERVER,
            "--",
            "--port",
            str(self._port),
            "--state",
            str(self.state_file),
            "--functions",
            self.functions,
        ]
        self._popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._port = self._wait_until_listening(log_offset)
        except BaseException:
            self.kill()
            raise

    def _wait_until_listening(self, log_offset: int) -> int:
        assert self._popen is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                for line in log.read().decode(errors="replace").splitlines():
                    if line.startswith(READY_PREFIX):
                        return int(line.rsplit(":", 1)[1])
            if self._popen.poll() is not None:
                raise EmulatorFailed(
                    f"emulator exited with {self._popen.returncode}: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise EmulatorFailed(
                    f"emulator not listening after {self._startup_timeout}s: {self.log_tail()}"
                )
            # Polls the log the process writes; the deadline bounds the wait.
            time.sleep(0.02)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: the emulator finishes the calls it accepted."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to finish anything."""
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            popen.send_signal(sig)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, *, hard: bool = False) -> None:
        """An outage: stop (or kill, with hard=True) and start again on the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        self.kill()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> ConvexEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def post(
        self,
        kind: str,
        body: bytes,
        *,
        authorization: str | None = None,
        anonymous: bool = False,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One raw HTTP call: (HTTP status, decoded JSON body).

        The deploy key goes in `Authorization` unless `authorization` replaces
        it or `anonymous` leaves the header out.
        """
        headers = {"Content-Type": "application/json"}
        if not anonymous:
            headers["Authorization"] = (
                authorization if authorization is not None else f"Convex {self._deploy_key}"
            )
        # Always http://127.0.0.1: the emulator only listens on loopback.
        request = urllib.request.Request(
            f"{self.url}/api/{kind}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def call(
        self,
        kind: FunctionKind,
        path: str,
        args: Mapping[str, object] | None = None,
        *,
        anonymous: bool = False,
    ) -> Any:
        """Runs a function the way Convex's Python client does; raises ConvexFunctionError."""
        body = json.dumps(
            {"path": path, "args": dict(args or {}), "format": "convex_encoded_json"}
        ).encode()
        status, answer = self.post(kind, body, anonymous=anonymous)
        if status != 200:
            raise EmulatorFailed(f"HTTP {status} for {path}: {answer}")
        if answer["status"] == "success":
            return answer["value"]
        raise ConvexFunctionError(answer["errorMessage"], answer.get("errorData"))
