"""HostState undoes exactly what was added to the machine, and nothing else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cluster.host import HostState, _iptables_rules

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes iptables: needs root")


def _ipt(*args: str) -> None:
    subprocess.run(["iptables", "-w", *args], check=True, capture_output=True)


def test_restore_removes_added_chains_and_rules_and_keeps_existing_ones(tmp_path: Path) -> None:
    _ipt("-t", "filter", "-N", "FONDATION-KEEP")
    _ipt("-t", "filter", "-A", "FONDATION-KEEP", "-s", "10.250.0.1/32", "-j", "RETURN")
    try:
        before = _iptables_rules("iptables", "filter")
        state = HostState.record()
        _ipt("-t", "filter", "-N", "FONDATION-ADDED")
        _ipt(
            "-t",
            "filter",
            "-A",
            "FONDATION-ADDED",
            "-m",
            "comment",
            "--comment",
            "two words",
            "-j",
            "RETURN",
        )
        _ipt("-t", "filter", "-I", "FONDATION-KEEP", "1", "-j", "FONDATION-ADDED")
        _ipt("-t", "nat", "-N", "FONDATION-NAT")
        assert state.restore(tmp_path) == []
        assert _iptables_rules("iptables", "filter") == before
        assert "FONDATION-NAT" not in _iptables_rules("iptables", "nat")[0]
    finally:
        _ipt("-t", "filter", "-F", "FONDATION-KEEP")
        _ipt("-t", "filter", "-X", "FONDATION-KEEP")


def test_restore_puts_back_a_changed_sysctl(tmp_path: Path) -> None:
    path = Path("/proc/sys/kernel/panic_on_oops")
    original = path.read_text().strip()
    state = HostState.record()
    path.write_text("0\n" if original != "0" else "1\n")
    assert state.restore(tmp_path) == []
    assert path.read_text().strip() == original


def test_restore_removes_fixed_paths_the_node_created(tmp_path: Path) -> None:
    state = HostState.record()
    if "/var/log/pods" in state.existing_paths:
        pytest.skip("/var/log/pods already exists on this machine")
    Path("/var/log/pods/ns_pod_uid").mkdir(parents=True)
    assert state.restore(tmp_path) == []
    assert not Path("/var/log/pods").exists()
