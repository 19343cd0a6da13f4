"""The image archives import into containerd the way a node's are loaded
(`ctr -n k8s.io images import`), into a containerd this test starts in a
temporary directory. containerd unpacks each layer and checks it against the
config's diff_id, and the image it records names our config digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from images import build
from tests.cluster.controlplane import ProcessDied, wait_for

CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.opt"]
[grpc]
  address = "{dir}/c.sock"
[ttrpc]
  address = "{dir}/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


@dataclass
class Containerd:
    socket: Path

    def ctr(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"
        return result.stdout


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    missing = [b for b in ("containerd", "ctr") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian package `containerd`)")
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    # A short directory: the socket's path must fit in 108 bytes.
    state = Path(tempfile.mkdtemp(prefix="ctrd-"))
    (state / "config.toml").write_text(CONFIG.format(dir=state))
    log = (state / "log").open("w")
    proc = subprocess.Popen(
        ["containerd", "--config", str(state / "config.toml")], stdout=log, stderr=log
    )
    try:
        socket = state / "c.sock"

        def up() -> bool:
            if proc.poll() is not None:
                raise ProcessDied(f"containerd exited: {(state / 'log').read_text()[-2000:]}")
            return socket.exists()

        wait_for(up, timeout=60, what="containerd's socket")
        yield Containerd(socket)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def test_archives_import_and_keep_their_digests(containerd: Containerd) -> None:
    built = build.build_all()
    for image in built:
        containerd.ctr("images", "import", "--snapshotter", "native", image.path)
    listed = {}
    for line in containerd.ctr("images", "ls").splitlines()[1:]:
        ref, _type, digest, *_ = line.split()
        listed[ref] = digest
    for image in built:
        ref = f"docker.io/library/{image.ref}"  # how the kubelet names `fondation-runner:0.1.0`
        assert ref in listed, listed
        manifest = json.loads(containerd.ctr("content", "get", listed[ref]))
        assert manifest["config"]["digest"] == image.digest
        assert [layer["digest"] for layer in manifest["layers"]] == [image.diff_id]
