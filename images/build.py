"""Builds the project's three images without a Docker engine or a registry.

    python -m images.build [--print-paths | --json] [pause] [runner] [operator]

- `fondation-pause`: the pod sandbox's pause process (images/pause.c, static).
- `fondation-runner`: Debian bookworm (mmdebstrap, minbase) with python3 and
  git, and the project with its `claude` extra, so the Claude Code CLI that
  the claude-agent-sdk wheel bundles is inside.
- `fondation-operator`: the same without git and without the CLI.

Each is one docker-archive tar (images/archive.py) that `ctr -n k8s.io images
import` and `kind load image-archive` take, tagged `<name>:<appVersion of
charts/fondation-operator/Chart.yaml>`, so the chart's defaults name them.
Every image is cached under ~/.cache/fondation/images/ (or
$FONDATION_CACHE/images) by a hash of all its inputs: the Debian root
filesystem by the package list, mirrors and trim hook; the image by that,
the pinned wheels, the install script and the project's sources. A warm run
only hashes; several work trees may build at once (one lock).

The project's files come from images/install.sh, the same script the
Dockerfiles run. Debian packages come from the live bookworm archive (the
snapshot archive is out of reach here): their versions are whatever the
archive served when the root filesystem was first built, and are recorded in
the image's own dpkg status and in bench/results/images.json.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import yaml

from fondation_contracts import image as contract
from images.archive import (
    ContainerConfig,
    Entry,
    read_file,
    tar_entries,
    tree_entries,
    write_archive,
    write_layer,
)

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "images"
CHART_YAML = ROOT / "charts" / "fondation-operator" / "Chart.yaml"
INSTALL = HERE / "install.sh"
HOOK = HERE / "rootfs-hook.sh"
PAUSE_SOURCE = HERE / "pause.c"
# Package dirs and metadata install.sh builds the project from.
PROJECT_INPUTS = (
    "pyproject.toml",
    "README.md",
    "contracts",
    "operator",
    "runner",
    "cli",
    "prompts",
)

# SOURCE_DATE_EPOCH of every image (2026-01-01T00:00:00Z): every mtime in a
# layer, and the config's `created`.
EPOCH = 1767225600
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Never unpacked: documentation (copyright files kept), manuals, translations.
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
# Left empty in the layer: apt's state (apt itself is removed) and build logs.
EMPTIED = ("etc/apt", "var/lib/apt", "var/cache/apt", "var/log")
GCC_FLAGS = ("-Os", "-static", "-s")
PYTHON_ENV = (
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
)


@dataclass(frozen=True)
class Spec:
    """What one image is made of."""

    name: str
    repository: str
    packages: tuple[str, ...]  # Debian packages on top of minbase; () = no rootfs
    container: ContainerConfig


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec(
            name="pause",
            repository=contract.PAUSE_REPOSITORY,
            packages=(),
            container=ContainerConfig(
                user=f"{contract.PAUSE_UID}:{contract.PAUSE_UID}",
                env=["PATH=/"],
                entrypoint=["/pause"],
            ),
        ),
        Spec(
            name="runner",
            repository=contract.RUNNER_REPOSITORY,
            packages=("python3", "python-is-python3", "ca-certificates", "git"),
            container=ContainerConfig(
                user=f"{contract.UID}:{contract.UID}",
                env=[*PYTHON_ENV, f"HOME={contract.HOME}"],
                cmd=["python", "-m", "fondation_runner"],
                working_dir=contract.WORKSPACE,
            ),
        ),
        Spec(
            name="operator",
            repository=contract.OPERATOR_REPOSITORY,
            packages=("python3", "python-is-python3", "ca-certificates"),
            container=ContainerConfig(
                user=f"{contract.UID}:{contract.UID}",
                env=[*PYTHON_ENV, f"HOME={contract.HOME}"],
                cmd=["fondation", "operator"],
                working_dir=contract.HOME,
            ),
        ),
    )
}


@dataclass(frozen=True)
class Built:
    """One image archive, as the build left it (also its cache sidecar)."""

    name: str
    ref: str
    path: str
    digest: str  # the config's sha256: the image ID
    diff_id: str
    layer_bytes: int
    seconds: float
    cached: bool


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def app_version() -> str:
    chart = yaml.safe_load(CHART_YAML.read_text())
    version = chart.get("appVersion") if isinstance(chart, dict) else None
    if not isinstance(version, str) or not version:
        raise SystemExit(f"{CHART_YAML}: appVersion must be a non-empty string, not {version!r}")
    return version


def cache_root() -> Path:
    base = os.environ.get("FONDATION_CACHE") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fondation"
    )
    return Path(base) / "images"


class Hasher:
    """sha256 over labelled parts, so two different inputs never hash alike."""

    def __init__(self, kind: str) -> None:
        self._sha = hashlib.sha256(kind.encode())

    def add(self, label: str, data: bytes | str) -> Hasher:
        raw = data.encode() if isinstance(data, str) else data
        self._sha.update(f"\0{label}\0{len(raw)}\0".encode())
        self._sha.update(raw)
        return self

    def file(self, path: Path) -> Hasher:
        return self.add(path.relative_to(ROOT).as_posix(), path.read_bytes())

    def tree(self, path: Path) -> Hasher:
        if path.is_file():
            return self.file(path)
        for item in sorted(path.rglob("*")):
            rel = item.relative_to(path).parts
            if (
                item.is_file()
                and "__pycache__" not in rel
                and not any(p.endswith(".egg-info") for p in rel)
            ):
                self.file(item)
        return self

    def hexdigest(self) -> str:
        return self._sha.hexdigest()[:16]


def _run(cmd: Sequence[str], what: str, **kwargs: object) -> str:
    result = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{tail}")
    out: str = result.stdout
    return out


def ensure_mmdebstrap() -> str:
    """mmdebstrap's path, installing the Debian package when it is missing."""
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit(
            "mmdebstrap is missing: install it (apt-get install mmdebstrap) or run as root"
        )
    log("installing mmdebstrap (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], "apt-get update", env=env)
    _run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"],
        "apt-get install mmdebstrap",
        env=env,
    )
    found = shutil.which("mmdebstrap")
    if not found:
        raise SystemExit("apt-get installed mmdebstrap but it is not on PATH")
    return found


def rootfs_key(spec: Spec) -> str:
    return (
        Hasher("rootfs")
        .add("suite", SUITE)
        .add("mirrors", json.dumps(MIRRORS))
        .add("packages", json.dumps(spec.packages))
        .add("dpkg", json.dumps(DPKG_OPTIONS))
        .add("uid", str(contract.UID))
        .add("epoch", str(EPOCH))
        .file(HOOK)
        .hexdigest()
    )


def build_rootfs(spec: Spec, cache: Path) -> Path:
    """The trimmed Debian root filesystem of `spec`, as a tar (cached)."""
    out = cache / f"rootfs-{spec.name}-{rootfs_key(spec)}.tar"
    with _locked(cache, "rootfs"):
        if not out.exists():
            _mmdebstrap(spec, cache, out)
    return out


def _mmdebstrap(spec: Spec, cache: Path, out: Path) -> None:
    mmdebstrap = ensure_mmdebstrap()
    debs = cache / "debs"  # downloaded .deb files, reused by the next rootfs build
    debs.mkdir(parents=True, exist_ok=True)
    partial_out = out.with_name(out.name + ".partial")
    log(f"building the {spec.name} root filesystem with mmdebstrap ({', '.join(spec.packages)})")
    start = time.monotonic()
    _run(
        [
            mmdebstrap,
            "--variant=minbase",
            "--format=tar",
            f"--include={','.join(spec.packages)}",
            *(f"--dpkgopt={o}" for o in DPKG_OPTIONS),
            "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
            f'--customize-hook={HOOK} "$1" {contract.UID}',
            SUITE,
            str(partial_out),
            *MIRRORS,
        ],
        "mmdebstrap",
        env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)},
    )
    partial_out.replace(out)
    took = time.monotonic() - start
    log(f"{spec.name} root filesystem: {out.stat().st_size / 1e6:.0f} MB in {took:.0f} s")


def project_key() -> Hasher:
    h = Hasher("project").file(INSTALL).tree(HERE / "requirements")
    for name in PROJECT_INPUTS:
        h.tree(ROOT / name)
    return h


def install_project(flavour: str, dest: Path) -> None:
    """Run images/install.sh (the Dockerfiles' install step) into `dest`."""
    _run(
        ["sh", str(INSTALL), flavour, str(dest)],
        f"images/install.sh {flavour}",
        env={**os.environ, "PYTHON": sys.executable},
    )


@contextmanager
def _locked(cache: Path, what: str) -> Iterator[None]:
    """One builder of `what` at a time, across processes and work trees."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".lock-{what}").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _image_key(spec: Spec, ref: str) -> Hasher:
    return (
        Hasher("image")
        .add("ref", ref)
        .add("config", spec.container.model_dump_json(by_alias=True))
        .add("epoch", str(EPOCH))
        .add("emptied", json.dumps(EMPTIED))
        .file(HERE / "archive.py")
    )


def build(name: str, cache: Path | None = None) -> Built:
    """Build (or find in the cache) one image; `name` is pause, runner or operator."""
    spec = SPECS[name]
    cache = cache or cache_root()
    ref = f"{spec.repository}:{app_version()}"
    key = _image_key(spec, ref)
    if spec.packages:
        key.add("rootfs", rootfs_key(spec)).add("project", project_key().hexdigest())
    else:
        gcc = _run(["gcc", "--version"], "gcc --version").splitlines()[0]
        key.add("gcc", gcc).add("flags", json.dumps(GCC_FLAGS)).file(PAUSE_SOURCE)
    out = cache / f"{spec.repository}-{ref.split(':')[1]}-{key.hexdigest()}.tar"
    sidecar = out.with_suffix(".json")
    with _locked(cache, name):
        if out.exists() and sidecar.exists():
            built = Built(**json.loads(sidecar.read_text()))
            return Built(**{**asdict(built), "cached": True, "path": str(out)})
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"image-{name}-", dir=cache) as tmp_dir:
            tmp = Path(tmp_dir)
            layer = tmp / "layer.tar"
            if spec.packages:
                base = build_rootfs(spec, cache)
                log(f"installing the project ({name})")
                install_project(name, tmp / "project")
                with tarfile.open(base, mode="r:") as base_tar, layer.open("wb") as f:
                    entries = [
                        *tar_entries(base_tar),
                        *tree_entries(tmp / "project", owner=(0, 0)),
                    ]
                    diff_id, _ = write_layer(entries, f, EPOCH, EMPTIED)
                created_by = f"images/build.py: mmdebstrap {SUITE} + images/install.sh {name}"
            else:
                binary = tmp / "pause"
                _run(["gcc", *GCC_FLAGS, "-o", str(binary), str(PAUSE_SOURCE)], "gcc pause.c")
                entry = Entry(
                    "pause",
                    tarfile.REGTYPE,
                    0o755,
                    0,
                    0,
                    size=binary.stat().st_size,
                    opener=partial(read_file, binary),
                )
                with layer.open("wb") as f:
                    diff_id, _ = write_layer([entry], f, EPOCH)
                created_by = f"images/build.py: gcc {' '.join(GCC_FLAGS)} images/pause.c"
            info = write_archive(
                out,
                layer=layer,
                diff_id_hex=diff_id,
                repo_tag=ref,
                container=spec.container,
                epoch=EPOCH,
                created_by=created_by,
            )
        built = Built(
            name=name,
            ref=ref,
            path=str(out),
            digest=info.config_digest,
            diff_id=info.diff_id,
            layer_bytes=info.layer_bytes,
            seconds=round(time.monotonic() - start, 1),
            cached=False,
        )
        sidecar.write_text(json.dumps(asdict(built), indent=2) + "\n")
        log(f"{ref}: {info.layer_bytes / 1e6:.1f} MB, {info.config_digest} in {built.seconds} s")
        return built


def build_all(names: Sequence[str] = tuple(SPECS), cache: Path | None = None) -> list[Built]:
    return [build(name, cache) for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m images.build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "names", nargs="*", help=f"images to build: {', '.join(SPECS)} (default: all)"
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--print-paths", action="store_true", help="print only the archives' paths")
    out.add_argument("--json", action="store_true", help="print what was built as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SPECS))
    if unknown:
        parser.error(f"unknown image {', '.join(unknown)}: choose from {', '.join(SPECS)}")
    built = build_all(args.names or tuple(SPECS))
    if args.json:
        print(json.dumps([asdict(b) for b in built], indent=2))
    else:
        for b in built:
            print(
                b.path
                if args.print_paths
                else f"{b.ref}\t{b.digest}\t{b.layer_bytes / 1e6:.1f} MB\t{b.path}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
