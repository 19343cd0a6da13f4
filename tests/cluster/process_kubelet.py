"""Runs a runner pod's container as a local process, as a kubelet would.

The test control plane has no kubelet. This stand-in takes a Pending pod of a
runner Job, gives each volume a directory (Secrets written as files, the
per-job token among them), resolves the container's environment (secret
references included), maps mount paths onto those directories, runs the
container's command, and reports the pod's status (Running, then Succeeded
or Failed with the exit code and termination message) through the API as a
kubelet does. The runner process itself is the real one, with the real
token, reporting to the real operator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fondation_contracts import analysisjob as aj
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import NotFound
from fondation_operator.kube.resources import PODS, SECRETS
from tests.cluster.objects import finish_pod


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRun:
    pod: str
    exit_code: int
    log: str


@dataclass
class ProcessKubelet:
    kube: KubeClient
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    runs: list[PodRun] = field(default_factory=list)

    async def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            body = await self.kube.get(SECRETS, name, namespace)
        except NotFound:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (body.get("data") or {}).items()}

    async def _volumes(self, namespace: str, pod: dict[str, Any], root: Path) -> dict[str, Path]:
        dirs: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            path = root / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            secret = volume.get("secret")
            if secret:
                data = await self._secret(namespace, secret["secretName"])
                if data is None and not secret.get("optional"):
                    raise RuntimeError(f"secret {secret['secretName']} not found")
                items = secret.get("items") or [{"key": k, "path": k} for k in data or {}]
                for item in items:
                    if data and item["key"] in data:
                        (path / item["path"]).write_text(data[item["key"]])
            dirs[volume["name"]] = path
        return dirs

    async def run_pod(self, namespace: str, name: str) -> PodRun:
        pod = await self.kube.get(PODS, name, namespace)
        container = pod["spec"]["containers"][0]
        root = self.workdir / namespace / name
        volumes = await self._volumes(namespace, pod, root)
        mounts = sorted(
            ((m["mountPath"], volumes[m["name"]]) for m in container.get("volumeMounts") or []),
            key=lambda m: -len(m[0]),
        )

        def host_path(value: str) -> str:
            for mount, host in mounts:
                if value == mount or value.startswith(mount + "/"):
                    return str(host) + value[len(mount) :]
            return value

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.extra_env}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = host_path(var["value"])
                continue
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                data = await self._secret(namespace, ref["name"]) or {}
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise RuntimeError(f"secret key {ref['name']}/{ref['key']} not found")
        command = list(container["command"])
        if command[0] == "python":
            command[0] = sys.executable
        await self._set_running(namespace, name)
        log_path = root / "container.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                cwd=str(root),
            )
            code = await proc.wait()
        text = log_path.read_text(errors="replace")
        message = "\n".join(text.splitlines()[-20:]) if code else ""
        await finish_pod(self.kube, namespace, name, exit_code=code, message=message[-4000:])
        run = PodRun(name, code, text)
        self.runs.append(run)
        return run

    async def _set_running(self, namespace: str, name: str) -> None:
        now = _now()
        await self.kube.patch(
            PODS,
            name,
            {
                "status": {
                    "phase": "Running",
                    "startTime": now,
                    "containerStatuses": [
                        {
                            "name": "runner",
                            "ready": True,
                            "restartCount": 0,
                            "image": "fondation-runner",
                            "imageID": "",
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
            namespace,
            sub="status",
        )

    async def serve(self, namespace: str, stop: asyncio.Event, *, interval: float = 0.1) -> None:
        """Run every Pending runner pod of `namespace` until `stop` is set."""
        started: set[str] = set()
        tasks: set[asyncio.Task[PodRun]] = set()
        try:
            while not stop.is_set():
                for pod in await self.kube.list(
                    PODS, namespace, label_selector=aj.LABEL_ANALYSISJOB
                ):
                    name = pod["metadata"]["name"]
                    phase = (pod.get("status") or {}).get("phase")
                    deleting = pod["metadata"].get("deletionTimestamp")
                    if name not in started and phase == "Pending" and not deleting:
                        started.add(name)
                        task = asyncio.create_task(self.run_pod(namespace, name))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            for task in list(tasks):
                task.cancel()
