"""The tier-2 node runs real pods: scheduled, run by containerd, networked.

These tests need root and the packages of scripts/bootstrap-host.sh; the
`node` fixture skips them with the reason when the machine cannot run a node.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cluster.controlplane import wait_for
from tests.cluster.node import BRIDGE, NODE_NAME, POD_CIDR, Node

pytestmark = [pytest.mark.node]


def _pod(name: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65535,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "c",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }
    )


def test_node_is_ready_and_a_restricted_pod_runs_in_containerd(node: Node) -> None:
    cp = node.cp
    cp.kubectl("create", "namespace", "smoke")
    cp.kubectl("label", "namespace", "smoke", "pod-security.kubernetes.io/enforce=restricted")
    cp.kubectl("apply", "-n", "smoke", "-f", "-", input=_pod("sleeper", node.image("pause")))

    def running() -> bool:
        out = cp.kubectl("get", "pod", "sleeper", "-n", "smoke", "-o", "json").stdout
        pod = json.loads(out)
        return bool(pod["status"].get("phase") == "Running")

    wait_for(running, timeout=60, interval=0.2, what="pod Running")
    pod = json.loads(cp.kubectl("get", "pod", "sleeper", "-n", "smoke", "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["podIP"].startswith(POD_CIDR.rsplit(".", 2)[0])
    # containerd really runs it: its task is listed by the node's containerd.
    assert node.ctr("tasks", "ls").stdout.count("RUNNING") >= 2
    # Its routes cover only the pod and Service ranges: no default route.
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]
    pid = node.ctr("tasks", "ls").stdout.split(cid)[1].split()[0]
    routes = subprocess.run(
        ["nsenter", "-t", pid, "-n", "ip", "route"], check=True, capture_output=True, text=True
    ).stdout
    assert "default" not in routes
    assert BRIDGE not in routes  # a pod sees eth0, not the host's bridge
    cp.kubectl("delete", "namespace", "smoke", "--wait=false")
