"""A real Kubernetes control plane for tests: etcd, kube-apiserver and
kube-controller-manager, each its own OS process, on free loopback ports.

Modelled on controller-runtime's envtest: binaries built from the pinned
Kubernetes Go modules (tests/cluster/build.sh), state in a temporary
directory, readiness awaited with a deadline, every process stopped by PID.
`restart()` stops one component (politely or with SIGKILL) and starts it
again with the same flags, ports and data, for fault tests.

With `for_node=True` it is the control plane of the tier-2 cluster
(tests/cluster/node.py): the API server listens on the node's bridge address
as well, so the `kubernetes` Service gets an endpoint pods can reach, and it
authorizes the node components (Node authorizer, NodeRestriction, a client
certificate for its calls to the kubelet, tokens for the kubelet,
kube-scheduler and kube-proxy).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CRD_PATH = ROOT / "crds" / "analysisjob.yaml"
ADMIN_USER = "fondation-admin"

# Controllers a Job needs to become pods and to be cleaned up.
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    # Counts ResourceQuota usage, without which quota admission refuses everything.
    "resourcequota-controller",
)
# What a control plane with a real node needs on top: Deployments (the chart's
# operator) get pods, the node's taints lift when it is Ready, pods get
# kube-root-ca.crt, Services get endpoints, pods of a dead node are evicted
# and collected.
NODE_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "root-ca-certificate-publisher-controller",
    "endpointslice-controller",
    "endpoints-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
)
# Users of the node components (token file entries), and their groups.
NODE_USERS = {
    "kubelet": ("system:node:{node}", "system:nodes"),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kube-proxy": ("system:kube-proxy", ""),
}


class ProcessDied(RuntimeError):
    """A component exited while we were waiting for it: no point waiting on."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kcp_binary() -> Path:
    """Build (or find cached) the multi-call control-plane binary."""
    out = subprocess.run(
        [str(HERE / "build.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(out)


def wait_for(predicate: object, *, timeout: float, interval: float = 0.05, what: str) -> None:
    """Poll `predicate` until it returns truthy or `timeout` passes."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ProcessDied:
            raise
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]
    args: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    """Start with `start()`, stop with `stop()`; or use as a context manager."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fondation-kcp-")))
    keep_workdir: bool = bool(os.environ.get("FONDATION_KEEP_WORKDIR"))
    binary: Path | None = None
    api_port: int = 0
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[Process] = field(default_factory=list)
    # The tier-2 cluster: the API server also listens on `host` (the node's
    # bridge address) and authorizes the node `node_name`.
    for_node: bool = False
    host: str = "127.0.0.1"
    node_name: str = "fondation-node"
    component_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.api_port}"

    @property
    def node_ca(self) -> Path:
        """CA of the certificate the API server presents to the kubelet."""
        return self.workdir / "certs" / "node-ca.crt"

    @property
    def ca_path(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- lifecycle -------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> None:
        self.binary = self.binary or kcp_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self.write_kubeconfig(self.kubeconfig, token=self.admin_token)
            self._start_controller_manager(timeout)
            self.apply_file(CRD_PATH)
            self.wait_crd_established("analysisjobs.fondation.dev", timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, name: str, *, kill: bool = False, timeout: float = 90.0) -> None:
        """Stop component `name` (SIGTERM, or SIGKILL with `kill`) and start it again
        with the same flags, ports and data; return once it is ready again."""
        (proc,) = [p for p in self.processes if p.name == name]
        proc.stop(kill=kill)
        index = self.processes.index(proc)
        self.processes.remove(proc)
        again = self._spawn(name, proc.args)
        self.processes.remove(again)
        self.processes.insert(index, again)  # stop() goes in reverse start order
        {
            "etcd": self._wait_etcd,
            "kube-apiserver": self._wait_apiserver,
            "kube-controller-manager": self._wait_controller_manager,
        }[name](again, timeout)

    def pid(self, name: str) -> int:
        (proc,) = [p for p in self.processes if p.name == name]
        return proc.popen.pid

    def _spawn(self, name: str, args: list[str]) -> Process:
        assert self.binary is not None
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            [str(self.binary), name, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        proc = Process(name, popen, log_path, log, list(args))
        self.processes.append(proc)
        return proc

    def _check_alive(self, proc: Process) -> None:
        if proc.popen.poll() is not None:
            raise ProcessDied(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=error",
                "--quota-backend-bytes=4294967296",
            ],
        )
        self._wait_etcd(proc, timeout)

    def _wait_etcd(self, proc: Process, timeout: float) -> None:
        def healthy() -> bool:
            self._check_alive(proc)
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1) as resp:
                return b'"true"' in resp.read()

        wait_for(healthy, timeout=timeout, what="etcd health")

    def _start_apiserver(self, timeout: float) -> None:
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key = certs / "sa.key"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True
        )
        tokens = self.workdir / "tokens.csv"
        lines = [f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"']
        node_args: list[str] = []
        if self.for_node:
            for component, (user_template, group) in NODE_USERS.items():
                token = self.component_tokens.setdefault(component, secrets.token_hex(16))
                user = user_template.format(node=self.node_name)
                lines.append(
                    f'{token},{user},{user},"{group}"' if group else f"{token},{user},{user}"
                )
            client_crt, client_key = self._kubelet_client_certificate(certs)
            node_args = [
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={client_crt}",
                f"--kubelet-client-key={client_key}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        else:
            node_args = ["--authorization-mode=RBAC"]
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        self.api_port = free_port()
        proc = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.api_port}",
                f"--cert-dir={certs}",
                f"--token-auth-file={tokens}",
                *node_args,
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--profiling=false",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                "--v=0",
            ],
        )
        self._sa_key = sa_key
        self._wait_apiserver(proc, timeout)

    def _wait_apiserver(self, proc: Process, timeout: float) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def ready() -> bool:
            self._check_alive(proc)
            req = urllib.request.Request(
                f"{self.server}/readyz",
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                    return bool(resp.status == 200)
            except urllib.error.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.1, what="kube-apiserver /readyz")

    def _start_controller_manager(self, timeout: float) -> None:
        controllers = CONTROLLERS + (NODE_CONTROLLERS if self.for_node else ())
        proc = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(controllers)}",
                f"--service-account-private-key-file={self._sa_key}",
                f"--root-ca-file={self.ca_path}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-job-syncs=20",
                "--concurrent-gc-syncs=20",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--v=0",
            ],
        )
        self._wait_controller_manager(proc, timeout)

    def _wait_controller_manager(self, proc: Process, timeout: float) -> None:
        def default_sa() -> bool:
            self._check_alive(proc)
            out = self.kubectl(
                "get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False
            )
            return out.returncode == 0

        wait_for(default_sa, timeout=timeout, interval=0.2, what="controller-manager to run")

    def _kubelet_client_certificate(self, certs: Path) -> tuple[Path, Path]:
        """A CA (the kubelet's clientCAFile) and the API server's client
        certificate for its calls to the kubelet (logs, exec), in group
        system:masters so the kubelet's webhook authorization allows them."""
        ca_key, ca_crt = certs / "node-ca.key", self.node_ca
        key, csr, crt = (
            certs / "kubelet-client.key",
            certs / "kubelet-client.csr",
            certs / "kubelet-client.crt",
        )
        commands = [
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(ca_key),
                "-out",
                str(ca_crt),
                "-days",
                "2",
                "-subj",
                "/CN=fondation-node-ca",
            ],
            [
                "openssl",
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(csr),
                "-subj",
                "/O=system:masters/CN=kube-apiserver-kubelet-client",
            ],
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(ca_crt),
                "-CAkey",
                str(ca_key),
                "-CAcreateserial",
                "-out",
                str(crt),
                "-days",
                "2",
            ],
        ]
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        return crt, key

    def component_kubeconfig(self, component: str) -> Path:
        """A kubeconfig for a node component (a key of NODE_USERS)."""
        return self.write_kubeconfig(
            self.workdir / f"{component}.kubeconfig", token=self.component_tokens[component]
        )

    # ---- helpers ---------------------------------------------------------

    def write_kubeconfig(self, path: Path, *, token: str, namespace: str = "default") -> Path:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "local",
                    "context": {"cluster": "local", "user": "user", "namespace": namespace},
                }
            ],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        assert self.binary is not None
        result = subprocess.run(  # noqa: PLW1510 - `check` is handled below, with stderr
            [
                str(self.binary),
                "kubectl",
                f"--kubeconfig={kubeconfig or self.kubeconfig}",
                # Discovery cache in the workdir, not in whatever HOME the caller has.
                f"--cache-dir={self.workdir / 'kubectl-cache'}",
                *args,
            ],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
            env={**os.environ, "KUBECTL_COMMAND": "kubectl"},
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply_file(self, path: Path) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))

    def wait_crd_established(self, name: str, timeout: float) -> None:
        def established() -> bool:
            out = self.kubectl(
                "get",
                "crd",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                check=False,
            )
            return out.stdout.strip() == "True"

        wait_for(established, timeout=timeout, what=f"CRD {name} established")

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, duration: str = "24h"
    ) -> Path:
        """A kubeconfig holding a real, bound service-account token (TokenRequest API)."""
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        return self.write_kubeconfig(
            self.workdir / f"{namespace}-{name}.kubeconfig", token=token, namespace=namespace
        )
