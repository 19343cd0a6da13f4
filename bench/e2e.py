"""End-to-end benchmark on the tier-2 node (`make bench-e2e`).

Prints and writes bench/results/e2e.json:
- setup: node start (containerd, images imported, kubelet Ready, kube-proxy,
  CoreDNS, kube-router) plus `helm install` until the operator pod is Ready,
  with every binary and image already built (`warm_setup_s`); `cold_setup_s`
  adds the builds of this run (binaries and images not yet cached);
- apply -> runner pod Running for 20 AnalysisJobs applied one after another
  (p50, p99), seen through a watch on pods;
- apply -> Succeeded of the sample course (offline backend), alone;
- runner peak memory (max_usage_in_bytes of its pod's memory cgroup) and the
  operator pod's idle working set (usage minus inactive file pages);
- image sizes (uncompressed layer of each archive).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import kcp_binary
from tests.cluster.git_server import GitServer
from tests.cluster.node import OUTSIDE_IP, Node, NodeUnavailable, gobuild, preflight
from tests.cluster.release import (
    SAMPLE_REPO,
    apply_analysis,
    helm_for,
    install,
    operator_pod,
    runner_namespace,
    runner_pods,
    wait_analysis,
)

from bench.common import JobWatch, kube_version, machine, percentile, write_results
from fondation_operator.kube import config as kube_config
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import PODS
from images import build as images

MEMORY_CGROUP = Path("/sys/fs/cgroup/memory/kubepods")
MB = 1024 * 1024
NAMESPACE = "bench-e2e"


def pod_cgroup(pod: dict[str, Any]) -> Path | None:
    """The memory cgroup of a pod (cgroup v1, cgroupfs driver)."""
    found = list(MEMORY_CGROUP.glob(f"**/pod{pod['metadata']['uid']}"))
    return found[0] if found else None


def working_set_mb(cgroup: Path) -> float:
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    return (usage - int(stat.get("total_inactive_file", 0))) / MB


async def apply_to_running(node: Node, namespace: str, repository: str, count: int) -> list[float]:
    """apply -> Running of `count` runner pods, one AnalysisJob after the other."""

    def running(pod: dict[str, Any]) -> bool:
        return bool(pod.get("status", {}).get("phase") == "Running")

    async with KubeClient(kube_config.from_kubeconfig(node.cp.kubeconfig)) as kube:
        watch = JobWatch(kube, namespace, PODS, running)
        await watch.start()
        latencies = []
        try:
            for i in range(count):
                name = f"burst-{i}"
                start = time.perf_counter()
                arrival = watch.arrival(name)
                await asyncio.to_thread(apply_analysis, node, namespace, name, repository)
                latencies.append(await asyncio.wait_for(arrival, 120) - start)
        finally:
            await watch.stop()
    return latencies


def runner_peak_mb(node: Node, namespace: str, name: str) -> float:
    """Peak memory of the runner pod of `name`, sampled until it finishes."""
    peak = 0.0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for pod in runner_pods(node, namespace, name):
            cgroup = pod_cgroup(pod)
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    peak = max(peak, int((cgroup / "memory.max_usage_in_bytes").read_text()) / MB)
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                return peak
        time.sleep(0.2)
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench-e2e")
    parser.add_argument("--out", type=Path, default=Path("bench/results/e2e.json"))
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    try:
        preflight()
    except NodeUnavailable as exc:
        print(f"bench-e2e: tier-2 node unavailable on this machine: {exc}", file=sys.stderr)
        return 2

    cold_start = time.monotonic()
    binary = kcp_binary()
    gobuild("coredns", ".")
    built = images.build_all(("pause", "runner", "operator"))
    builds_s = time.monotonic() - cold_start

    setup_start = time.monotonic()
    node = Node()
    node.start()
    try:
        helm = helm_for(node, Path(tempfile.mkdtemp(prefix="fondation-bench-helm-")))
        install(helm, node, namespaces=[NAMESPACE])
        warm_setup_s = time.monotonic() - setup_start
        git = GitServer(host=OUTSIDE_IP)
        git.start()
        try:
            git.publish(SAMPLE_REPO, "sample")
            namespace = runner_namespace(node, NAMESPACE, git)
            operator_cgroup = pod_cgroup(operator_pod(node))
            operator_idle_mb = working_set_mb(operator_cgroup) if operator_cgroup else None

            start = time.monotonic()
            apply_analysis(node, namespace, "sample", git.url("sample"), maxChapters=8)
            peak = runner_peak_mb(node, namespace, "sample")
            wait_analysis(node, namespace, "sample", "Succeeded", timeout=300)
            apply_to_succeeded_s = time.monotonic() - start

            latencies = asyncio.run(
                apply_to_running(node, namespace, git.url("sample"), args.count)
            )
        finally:
            git.stop()
    finally:
        problems = node.stop()
    sizes = {b.name: b.layer_bytes / 1e6 for b in built}
    result = {
        "benchmark": "e2e",
        "apply_to_running_p50_s": round(percentile(latencies, 50), 2),
        "apply_to_running_p99_s": round(percentile(latencies, 99), 2),
        "apply_to_running_count": len(latencies),
        "apply_to_succeeded_s": round(apply_to_succeeded_s, 1),
        "runner_peak_mb": round(peak, 1),
        "operator_idle_mb": round(operator_idle_mb, 1) if operator_idle_mb is not None else None,
        "runner_image_mb": round(sizes["runner"], 1),
        "operator_image_mb": round(sizes["operator"], 1),
        "cold_setup_s": round(builds_s + warm_setup_s, 1),
        "warm_setup_s": round(warm_setup_s, 1),
        # cold = what this run built (binaries, images) + setup: equal to warm
        # when everything was cached already.
        "builds_s": round(builds_s, 1),
        "goals": {"apply_to_running_p50_s": 3, "runner_peak_mb": 200, "operator_idle_mb": 60},
        "host_restored": not problems,
        "machine": machine(kube_version(binary)),
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
