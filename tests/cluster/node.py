"""The tier-2 test cluster: a real node next to the test control plane.

Tier 1 (tests/cluster/controlplane.py and process_kubelet.py) runs runner
pods as local processes. Tier 2 runs them for real: containerd and runc from
the Debian packages, the CNI bridge plugin, and the kubelet, kube-scheduler
and kube-proxy built into the same multi-call binary as the control plane
(tests/cluster/kcp), plus CoreDNS so Service names resolve in pods and
kube-router (firewall only) so NetworkPolicies are enforced.

Everything lives under one temporary directory, except what these programs
put at fixed places; `HostState` (tests/cluster/host.py) records the machine
before and restores it after. Pods sit on a bridge of their own
(`fondation0`, 10.244.0.1/24, the API server also listens there); their routes
cover only the pod and Service ranges, and FORWARD drop rules stop anything
from the bridge toward another interface, so no pod traffic leaves the
machine. Only one tier-2 cluster runs on a machine at a time (a file lock).

`NodeUnavailable` says, in one line, why this machine cannot run a node (not
root, a missing program, a kernel feature); tests then skip with that reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from images import build as images
from tests.cluster.controlplane import HERE, ControlPlane, Process, ProcessDied, free_port, wait_for
from tests.cluster.host import HostState, delete_link, kill_cgroup_processes, write_sysctl

BRIDGE = "fondation0"
BRIDGE_IP = "10.244.0.1"
# "Outside" services (the Git host, the model API) as pods see them: an
# address outside every private range (TEST-NET-2), a second address of the
# bridge, so the runner NetworkPolicy (which denies private ranges) treats it
# as the internet, while packets to it never leave the machine.
OUTSIDE_IP = "198.51.100.10"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "fondation-node"
LOCK_PATH = Path("/run/lock/fondation-tier2.lock")
CACHE = Path(
    os.environ.get("FONDATION_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fondation"
)
REQUIRED_PROGRAMS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ipset")
CNI_BIN_DIR = Path("/usr/lib/cni")


class NodeUnavailable(RuntimeError):
    """This machine cannot run the tier-2 node; the message says why, in one line."""


def preflight() -> None:
    """Raise NodeUnavailable with the first reason this machine cannot run a node."""
    if os.geteuid() != 0:
        raise NodeUnavailable("tier-2 node needs root (containerd, bridges, iptables)")
    for program in REQUIRED_PROGRAMS:
        if shutil.which(program) is None:
            raise NodeUnavailable(f"{program} not found: run scripts/bootstrap-host.sh")
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).exists():
            raise NodeUnavailable(
                f"CNI plugin {CNI_BIN_DIR / plugin} missing: run scripts/bootstrap-host.sh"
            )
    filesystems = Path("/proc/filesystems").read_text()
    if "overlay" not in filesystems:
        raise NodeUnavailable("kernel has no overlay filesystem (containerd's snapshotter)")
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        raise NodeUnavailable("no memory cgroup controller mounted at /sys/fs/cgroup")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise NodeUnavailable(
            "kernel has no br_netfilter (bridged pod traffic would bypass iptables)"
        )
    probe = f"fprobe{os.getpid() % 10000}"
    out = subprocess.run(
        ["ip", "link", "add", probe, "type", "bridge"], check=False, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise NodeUnavailable(f"cannot create a bridge: {out.stderr.strip()}")
    delete_link(probe)


def gobuild(name: str, package: str) -> Path:
    """Build (or find cached) a Go command of tests/cluster/<name>/."""
    out = subprocess.run(
        [str(HERE / "gobuild.sh"), name, package], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Path(out)


@dataclass
class Node:
    """Start with `start()`, stop with `stop()`; or use as a context manager.

    `control_plane` is created here (for a node) unless one is given.
    """

    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="fnode-", dir="/tmp"))
    )
    control_plane: ControlPlane | None = None
    processes: list[Process] = field(default_factory=list)
    host_state: HostState | None = None
    dns_port: int = 53
    # kube-router's firewall, enforcing NetworkPolicies.
    network_policies: bool = True
    # The project's images (images/build.py), imported into containerd: the
    # sandbox (pause) image and, unless `images=["pause"]`, runner and operator.
    image_names: tuple[str, ...] = ("pause", "runner", "operator")
    images: list[images.Built] = field(default_factory=list)
    _lock: IO[bytes] | None = None

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def cp(self) -> ControlPlane:
        assert self.control_plane is not None
        return self.control_plane

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    # ---- lifecycle -------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        preflight()
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        self._lock = LOCK_PATH.open("wb")
        # Another tier-2 cluster (another work tree's test run) may hold the
        # machine's bridge and iptables: wait for it, with a deadline.
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NodeUnavailable(
                        "another tier-2 cluster held the machine for 15 min"
                    ) from None
                time.sleep(1)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.images = images.build_all(self.image_names)
        self.host_state = HostState.record()
        try:
            self._network()
            if self.control_plane is None:
                self.control_plane = ControlPlane(
                    workdir=self.workdir / "cp", for_node=True, host=BRIDGE_IP, node_name=NODE_NAME
                )
            self.cp.start(timeout=timeout)
            self._start_containerd(timeout)
            for image in self.images:
                self.import_image(Path(image.path))
            self._start_kubelet(timeout)
            self._start_scheduler()
            self._start_kube_proxy(timeout)
            self._start_coredns(timeout)
            if self.network_policies:
                self._start_kube_router()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[str]:
        """Stop everything and restore the machine; returns what could not be undone."""
        problems: list[str] = []
        # The kubelet first, so no new sandbox starts; then every container
        # (sandboxes included) through containerd; then containerd, its
        # shims, and any process left in the pods' cgroups.
        for proc in reversed(self.processes):
            if proc.name != "containerd":
                proc.stop()
        self._remove_pods()
        for proc in self.processes:
            proc.stop()
        self.processes.clear()
        self._kill_shims()
        if self.host_state is not None and not self.host_state.existing_cgroups:
            kill_cgroup_processes()
        if self.control_plane is not None:
            self.control_plane.stop()
        delete_link(BRIDGE)
        if self.host_state is not None:
            problems = self.host_state.restore(self.workdir)
            self.host_state = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return problems

    # ---- pieces ------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        proc = Process(name, popen, log_path, log)
        self.processes.append(proc)
        return proc

    def _kcp(self, name: str, args: list[str]) -> Process:
        assert self.cp.binary is not None
        return self._spawn(name, [str(self.cp.binary), name, *args])

    @staticmethod
    def _alive(proc: Process) -> None:
        if proc.popen.poll() is not None:
            raise ProcessDied(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")

    def _iptables(self, *args: str) -> None:
        subprocess.run(["iptables", "-w", *args], check=True, capture_output=True)

    def _network(self) -> None:
        delete_link(BRIDGE)
        for command in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
            ["ip", "addr", "add", f"{OUTSIDE_IP}/32", "dev", BRIDGE],
        ):
            subprocess.run(command, check=True, capture_output=True)
        write_sysctl("net/ipv4/ip_forward", "1")
        write_sysctl("net/bridge/bridge-nf-call-iptables", "1")
        # No pod traffic leaves the machine: nothing from the bridge is
        # forwarded to another interface (mangle runs before the filter rules
        # kube-proxy and kube-router insert), and nothing is masqueraded.
        for table in ("mangle", "filter"):
            self._iptables(
                "-t", table, "-I", "FORWARD", "1", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"
            )
            self._iptables(
                "-t", table, "-I", "FORWARD", "1", "-s", POD_CIDR, "!", "-d", POD_CIDR, "-j", "DROP"
            )

    def _start_containerd(self, timeout: float) -> None:
        base = self.workdir / "containerd"
        (base / "cni").mkdir(parents=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "fondation",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(base / "ipam"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": BRIDGE_IP}]],
                        # Only the pod and Service ranges and the "outside"
                        # address of this machine: no default route.
                        "routes": [
                            {"dst": POD_CIDR},
                            {"dst": SERVICE_CIDR},
                            {"dst": f"{OUTSIDE_IP}/32"},
                        ],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (base / "cni" / "10-fondation.conflist").write_text(json.dumps(conflist))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{base}/containerd.ttrpc.sock"
[{cri}]
  sandbox_image = "{self.image("pause")}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{base / "cni"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"""
        (base / "config.toml").write_text(config)
        proc = self._spawn("containerd", ["containerd", "--config", str(base / "config.toml")])

        def up() -> bool:
            self._alive(proc)
            return self.ctr("version", check=False).returncode == 0

        wait_for(up, timeout=timeout, interval=0.1, what="containerd")

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr}")
        return result

    def import_image(self, archive: Path) -> None:
        """Load a docker-archive into the node's containerd."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def _start_kubelet(self, timeout: float) -> None:
        base = self.workdir / "kubelet"
        base.mkdir()
        resolv = base / "resolv.conf"
        # Names outside the cluster resolve nowhere: no upstream server.
        resolv.write_text("")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": BRIDGE_IP,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cp.node_ca)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "clusterDNS": [BRIDGE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv),
            "podLogsDir": str(base / "pod-logs"),
            # Imported images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "serializeImagePulls": False,
            "maxPods": 60,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
            "runtimeRequestTimeout": "5m",
        }
        (base / "config.yaml").write_text(yaml.safe_dump(config))
        self.kubelet_port = int(config["port"])  # type: ignore[call-overload]
        self._kubelet_args = [
            f"--config={base / 'config.yaml'}",
            f"--kubeconfig={self.cp.component_kubeconfig('kubelet')}",
            f"--root-dir={base / 'root'}",
            f"--cert-dir={base / 'pki'}",
            f"--node-ip={BRIDGE_IP}",
            f"--hostname-override={NODE_NAME}",
            "--v=1",
        ]
        self.start_kubelet(timeout)

    def start_kubelet(self, timeout: float = 120.0) -> Process:
        """(Re)start the kubelet and wait for the node to be Ready."""
        proc = self._kcp("kubelet", self._kubelet_args)

        def ready() -> bool:
            self._alive(proc)
            out = self.cp.kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            return out.stdout.strip() == "True"

        wait_for(ready, timeout=timeout, interval=0.2, what="node Ready")
        return proc

    def kill_kubelet(self) -> None:
        """SIGKILL the kubelet, as a crash would; containerd keeps its pods running."""
        for proc in [p for p in self.processes if p.name == "kubelet"]:
            proc.popen.kill()
            proc.stop()
            self.processes.remove(proc)

    def _start_scheduler(self) -> None:
        self._kcp(
            "kube-scheduler",
            [
                f"--kubeconfig={self.cp.component_kubeconfig('kube-scheduler')}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ],
        )

    def _start_kube_proxy(self, timeout: float) -> None:
        base = self.workdir / "kube-proxy"
        base.mkdir()
        health = free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.cp.component_kubeconfig("kube-proxy"))},
            "hostnameOverride": NODE_NAME,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "clusterCIDR": POD_CIDR,
            "nodePortAddresses": [f"{BRIDGE_IP}/32"],
            # Leave the host's conntrack settings alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"syncPeriod": "5s", "minSyncPeriod": "0s", "masqueradeAll": False},
        }
        (base / "config.yaml").write_text(yaml.safe_dump(config))
        proc = self._kcp("kube-proxy", [f"--config={base / 'config.yaml'}", "--v=0"])

        def healthy() -> bool:
            self._alive(proc)
            out = subprocess.run(
                ["iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"],
                check=False,
                capture_output=True,
            )
            return out.returncode == 0

        wait_for(healthy, timeout=timeout, interval=0.2, what="kube-proxy rules")

    def _start_coredns(self, timeout: float) -> None:
        binary = gobuild("coredns", ".")
        base = self.workdir / "coredns"
        base.mkdir()
        health, ready = free_port(), free_port()
        corefile = f"""{CLUSTER_DOMAIN}:{self.dns_port} in-addr.arpa:{self.dns_port} {{
    bind {BRIDGE_IP}
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {self.cp.kubeconfig}
        pods insecure
    }}
    cache 5
}}
.:{self.dns_port} {{
    bind {BRIDGE_IP}
    errors
}}
"""
        (base / "Corefile").write_text(corefile)
        proc = self._spawn("coredns", [str(binary), "-conf", str(base / "Corefile")])

        def up() -> bool:
            self._alive(proc)
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{ready}/ready", timeout=1) as resp:
                return bool(resp.status == 200)

        wait_for(up, timeout=timeout, interval=0.2, what="CoreDNS ready")

    def _start_kube_router(self) -> None:
        binary = gobuild("kube-router", "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router")
        self._spawn(
            "kube-router",
            [
                str(binary),
                f"--kubeconfig={self.cp.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                "--run-router=false",
                "--run-service-proxy=false",
                "--run-firewall=true",
                "--enable-cni=false",
                "--enable-ipv6=false",
                f"--health-port={free_port()}",
                "--metrics-port=0",
                "--iptables-sync-period=5s",
                "--v=1",
            ],
        )

    def _remove_pods(self) -> None:
        """Stop every pod sandbox, so shims, mounts and netns go away."""
        if not self.containerd_socket.exists():
            return
        runtime = f"unix://{self.containerd_socket}"
        crictl = shutil.which("crictl")
        if crictl:
            subprocess.run([crictl, "-r", runtime, "rmp", "-fa"], capture_output=True, check=False)
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            self.ctr("tasks", "delete", "-f", task, check=False)

    def _kill_shims(self) -> None:
        """containerd-shim processes of this node (their command line names our state dir)."""
        mark = str(self.workdir).encode()
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (pid_dir / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline and mark in cmdline:
                    os.kill(int(pid_dir.name), 9)

    # ---- helpers -----------------------------------------------------------

    def image(self, name: str) -> str:
        """Reference (`repository:tag`) of one of the project's images."""
        return next(i.ref for i in self.images if i.name == name)
