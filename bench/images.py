"""Image benchmark: `.venv/bin/python -m bench.images [--no-repeat]`.

Builds the pause, runner and operator images (images/build.py) as a fresh CI
machine would: an empty image cache, an empty pip cache and no downloaded
.deb files, in a temporary directory. Then:

- cold: seconds for the three images from nothing (mmdebstrap twice, pip,
  packing); warm: the same call again, when everything is cached;
- reproducible: a second cold build in another empty cache must give the
  same image digests (skipped with --no-repeat);
- sizes: each image's uncompressed layer (goals: runner <= 350 MB, operator
  <= 150 MB), its gzip size (what a registry push sends), and where the bytes
  go: the Claude Code CLI, the other Python packages, Python itself, git, the
  shared libraries, and the largest directories;
- the Debian package versions each image holds (the archive is not pinned to
  a snapshot: this is the record of what was built).

Prints the figures and writes bench/results/images.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import machine, write_results
from images import archive, build

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "images.json"
COMMAND = ".venv/bin/python -m bench.images"
SITE = "usr/local/lib/python3.11/dist-packages"
CLI = f"{SITE}/claude_agent_sdk/_bundled/claude"
GOALS_MB = {"runner": 350, "operator": 150}
# Where the bytes go: the first matching prefix names a file's share.
SHARES = (
    ("claude_code_cli", (CLI,)),
    ("python_packages", (SITE + "/",)),
    (
        "python",
        ("usr/lib/python3", "usr/bin/python3", "usr/lib/x86_64-linux-gnu/libpython3"),
    ),
    ("git", ("usr/lib/git-core/", "usr/bin/git", "usr/share/git-core/")),
    ("shared_libraries", ("usr/lib/x86_64-linux-gnu/", "lib/", "usr/lib/")),
    ("executables", ("usr/bin/", "usr/sbin/", "bin/", "sbin/")),
    ("dpkg_database", ("var/lib/dpkg/",)),
    ("zoneinfo", ("usr/share/zoneinfo/",)),
)


def _mb(n: int) -> float:
    return round(n / 1e6, 1)


def _gzip_bytes(path: Path) -> int:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    total = 0
    with archive.layer_file(path) as raw:
        while chunk := raw.read(archive.CHUNK):
            total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def anatomy(path: Path) -> dict[str, Any]:
    """Where an image's bytes go, from its layer's regular files."""
    shares: Counter[str] = Counter()
    dirs: Counter[str] = Counter()
    packages: dict[str, str] = {}
    with archive.open_layer(path) as layer:
        for m in layer.getmembers():
            if not m.isfile():
                continue
            share = next(
                (name for name, prefixes in SHARES if m.name.startswith(prefixes)), "other"
            )
            shares[share] += m.size
            parts = m.name.split("/")
            for depth in range(1, min(len(parts), 5)):
                dirs["/".join(parts[:depth])] += m.size
            if m.name == "var/lib/dpkg/status":
                status = layer.extractfile(m)
                assert status is not None
                packages = _installed(status.read().decode())
    largest = sorted((d for d in dirs.items() if d[0].count("/") >= 2), key=lambda d: -d[1])[:12]
    return {
        "shares_mb": {k: _mb(v) for k, v in shares.most_common()},
        "largest_dirs_mb": {k: _mb(v) for k, v in largest},
        "gzip_mb": _mb(_gzip_bytes(path)),
        "debian_packages": packages,
    }


def _installed(status: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status", "").endswith(" installed"):
            out[fields["Package"]] = fields["Version"]
    return dict(sorted(out.items()))


def cold_build(base: Path) -> tuple[float, list[build.Built]]:
    """All three images in an empty cache (images, .debs and pip's)."""
    os.environ["FONDATION_CACHE"] = str(base / "cache")
    os.environ["PIP_CACHE_DIR"] = str(base / "pip")
    start = time.monotonic()
    built = build.build_all()
    return round(time.monotonic() - start, 1), built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-repeat", action="store_true", help="skip the reproducibility build")
    args = parser.parse_args()
    saved = {k: os.environ.get(k) for k in ("FONDATION_CACHE", "PIP_CACHE_DIR")}
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        cold_s, first = cold_build(Path(tmp) / "first")
        start = time.monotonic()
        warm = build.build_all()
        warm_s = round(time.monotonic() - start, 1)
        assert all(b.cached for b in warm)
        repeat: list[build.Built] = []
        if not args.no_repeat:
            _, repeat = cold_build(Path(tmp) / "second")
        images: dict[str, Any] = {}
        for b in first:
            info = archive.verify(Path(b.path))
            entry: dict[str, Any] = {
                "ref": b.ref,
                "digest": b.digest,
                "uncompressed_mb": _mb(info.layer_bytes),
                "goal_mb": GOALS_MB.get(b.name),
                "build_s": b.seconds,
                **anatomy(Path(b.path)),
            }
            if repeat:
                (again,) = [r for r in repeat if r.name == b.name]
                entry["reproducible"] = again.digest == b.digest
            images[b.name] = entry
        (rootfs,) = (Path(tmp) / "first/cache/images").glob("rootfs-*.tar")
        rootfs_bytes = rootfs.stat().st_size
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    mmdebstrap = subprocess.run(
        ["mmdebstrap", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "command": COMMAND,
        "machine": {**machine("not used"), "mmdebstrap": mmdebstrap, "os": platform.platform()},
        "cold_build_s": cold_s,
        "warm_build_s": warm_s,
        "rootfs_tar_mb": _mb(rootfs_bytes),
        "images": images,
        "definitions": {
            "cold_build_s": "the three images from empty image, .deb and pip caches",
            "warm_build_s": "the same call again: inputs hashed, archives found in the cache",
            "rootfs_tar_mb": "the trimmed Debian root filesystem the runner and operator share",
            "uncompressed_mb": "the layer tar, what `ctr images import` unpacks",
            "gzip_mb": "the layer gzipped at level 6, about what a registry push sends",
            "reproducible": "a second cold build in another empty cache gave the same digest",
            "shares_mb": "regular files' bytes by what they are (first matching prefix)",
        },
    }
    write_results(RESULTS, result)


if __name__ == "__main__":
    main()
