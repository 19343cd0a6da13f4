"""What the tier-2 node changes on the machine, recorded before and undone after.

A kubelet, containerd, kube-proxy and kube-router are not confined to a
temporary directory: they set host sysctls, add iptables chains and rules and
ipsets, create cgroups and directories at fixed paths, and mount things. The
tier-2 fixture records the machine's state with `HostState.record()` before
it starts anything and calls `restore()` after it stopped every process, so a
test run leaves the machine as it found it. Only what was added is removed:
rules and chains that were already there are kept.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Sysctls the kubelet (setupKernelTunables), kube-proxy and the node set up
# change. Read and written through /proc/sys.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
)
# Fixed paths the kubelet, containerd and the CNI plugins create outside
# their configured directories.
FIXED_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/netns",
    "/run/containerd",
    "/var/run/netns",
    "/etc/cni",
    "/opt/cni",
    "/opt/containerd",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAME = "kubepods"
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle", "raw")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value + "\n")


def _iptables_rules(tool: str, table: str) -> tuple[set[str], list[str]]:
    """Chains and rules (as `-A CHAIN ...` lines) of one table."""
    out = _run(tool, "-w", "-t", table, "-S")
    chains: set[str] = set()
    rules: list[str] = []
    for line in out.stdout.splitlines():
        if line.startswith(("-N ", "-P ")):
            chains.add(line.split()[1])
        elif line.startswith("-A "):
            rules.append(line)
    return chains, rules


def _ipsets() -> set[str]:
    if shutil.which("ipset") is None:
        return set()
    return set(_run("ipset", "list", "-n").stdout.split())


def _mounts_under(prefixes: list[str]) -> list[str]:
    """Mount points under any of `prefixes`, deepest first."""
    points: list[str] = []
    with Path("/proc/self/mountinfo").open() as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_under(prefixes: list[str]) -> None:
    for point in _mounts_under(prefixes):
        # Lazy: a mount still busy (a dying shim) goes as soon as it is free.
        _run("umount", "-l", point)


def kill_cgroup_processes(name: str = CGROUP_NAME) -> None:
    """SIGKILL every process left in the `name` cgroup tree (the pods').

    Only called when the tree was created by the node: anything in it is a
    container process the node started whose shim is already gone.
    """
    top = CGROUP_ROOT / "memory" / name
    if not top.is_dir():
        top = CGROUP_ROOT / "pids" / name
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = []
        for procs in top.glob("**/cgroup.procs") if top.is_dir() else []:
            with contextlib.suppress(OSError):
                pids += [int(pid) for pid in procs.read_text().split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.1)


def remove_cgroups(name: str = CGROUP_NAME) -> list[str]:
    """Remove the `name` cgroup tree in every hierarchy; returns what stayed."""
    left: list[str] = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / name
        if not top.is_dir():
            continue
        # Deepest first: rmdir of a cgroup works once it has no children and no tasks.
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
            try:
                Path(dirpath).rmdir()
            except OSError:
                left.append(dirpath)
    return left


@dataclass
class HostState:
    sysctls: dict[str, str] = field(default_factory=dict)
    existing_paths: set[str] = field(default_factory=set)
    existing_cgroups: bool = False
    iptables: dict[tuple[str, str], tuple[set[str], list[str]]] = field(default_factory=dict)
    ipsets: set[str] = field(default_factory=set)

    @classmethod
    def record(cls) -> HostState:
        state = cls()
        for name in SYSCTLS:
            value = _read_sysctl(name)
            if value is not None:
                state.sysctls[name] = value
        state.existing_paths = {p for p in FIXED_PATHS if os.path.lexists(p)}
        state.existing_cgroups = any(
            (h / CGROUP_NAME).exists() for h in CGROUP_ROOT.iterdir() if h.is_dir()
        )
        for tool in IPTABLES:
            if shutil.which(tool):
                for table in TABLES:
                    state.iptables[(tool, table)] = _iptables_rules(tool, table)
        state.ipsets = _ipsets()
        return state

    def restore(self, workdir: Path) -> list[str]:
        """Undo what the node changed; returns what could not be undone."""
        problems: list[str] = []
        created = [p for p in FIXED_PATHS if p not in self.existing_paths]
        unmount_under([str(workdir), *created])
        for (tool, table), (chains, rules) in self.iptables.items():
            problems += self._restore_table(tool, table, chains, rules)
        for name in sorted(_ipsets() - self.ipsets):
            if _run("ipset", "destroy", name).returncode != 0:
                problems.append(f"ipset {name} not destroyed")
        if not self.existing_cgroups:
            problems += [f"cgroup {c} not removed" for c in remove_cgroups()]
        for path in created:
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
                if os.path.lexists(path):
                    problems.append(f"{path} not removed")
        for name, value in self.sysctls.items():
            if _read_sysctl(name) != value:
                try:
                    write_sysctl(name, value)
                except OSError as exc:
                    problems.append(f"sysctl {name} not restored to {value}: {exc}")
        return problems

    @staticmethod
    def _restore_table(tool: str, table: str, chains: set[str], rules: list[str]) -> list[str]:
        now_chains, now_rules = _iptables_rules(tool, table)
        before = set(rules)
        problems: list[str] = []
        added_chains = now_chains - chains
        # Added rules of kept chains first (they may jump to added chains),
        # then the added chains, flushed before they are deleted.
        for rule in reversed(now_rules):
            args = shlex.split(rule)
            if rule in before or args[1] in added_chains:
                continue
            args[0] = "-D"
            if _run(tool, "-w", "-t", table, *args).returncode != 0:
                problems.append(f"{tool} -t {table}: rule not removed: {rule}")
        for chain in sorted(added_chains):
            _run(tool, "-w", "-t", table, "-F", chain)
        for chain in sorted(added_chains):
            if _run(tool, "-w", "-t", table, "-X", chain).returncode != 0:
                problems.append(f"{tool} -t {table}: chain {chain} not removed")
        return problems


def delete_link(name: str) -> None:
    with contextlib.suppress(OSError):
        _run("ip", "link", "del", name)
