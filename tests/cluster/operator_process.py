"""The operator as a real OS process, for tests and benchmarks.

It runs as its own service account with the RBAC of deploy/rbac.yaml, so
every test that uses it also proves those rights are sufficient.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fondation_contracts.analysisjob import ALLOWED_HOSTS_ENV
from fondation_operator import tokens
from tests.cluster.controlplane import ROOT, ControlPlane, ProcessDied, free_port, wait_for

RBAC_PATH = ROOT / "deploy" / "rbac.yaml"
OPERATOR_NAMESPACE = "fondation-system"
OPERATOR_SA = "fondation-operator"


def install_rbac(cp: ControlPlane) -> Path:
    """Apply the operator's RBAC and return a kubeconfig acting as its service account."""
    cp.apply_file(RBAC_PATH)
    return cp.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA)


@dataclass
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    health_port: int = 0
    ingest_port: int = 0
    token_key: str = field(default_factory=lambda: secrets.token_hex(32))
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    starts: int = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    def token_for(self, uid: str, attempt: int = 1) -> str:
        """The ingest token of an attempt of the AnalysisJob with this uid, as its pod
        would read it."""
        return tokens.for_attempt(self.token_key.encode(), uid, attempt)

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        self.health_port = free_port()
        self.ingest_port = self.ingest_port or free_port()  # stable across restarts
        self._log = self.log_path.open("ab")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FONDATION_HEALTH_PORT": str(self.health_port),
            "FONDATION_INGEST_PORT": str(self.ingest_port),
            "FONDATION_INGEST_URL": self.ingest_url,
            "FONDATION_TOKEN_KEY": self.token_key,
            "FONDATION_BIND_ADDRESS": "127.0.0.1",
            # The local Git host is on loopback: allowed the way an operator would.
            ALLOWED_HOSTS_ENV: "127.0.0.1",
            **self.env,
        }
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fondation_operator",
                f"--kubeconfig={self.kubeconfig}",
                *self.args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.starts += 1
        if wait_ready:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise ProcessDied(f"operator exited {self.popen.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.health_url}/readyz", timeout=1) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(ready, timeout=timeout, what="operator /readyz")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye — what a node crash looks like."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
        self._close()

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def probe(self, path: str) -> int:
        """HTTP status of a health endpoint (`/healthz`, `/readyz`)."""
        try:
            with urllib.request.urlopen(f"{self.health_url}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.health_url}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
