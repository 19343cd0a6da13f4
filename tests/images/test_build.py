"""images/build.py: the three images as a node loads them. Reproducible and
cached; run as the user the chart and the Job builder expect; hold what each
container runs (python, git and the project; the Claude Code CLI in the
runner only) and nothing that varies between builds; the project's files are
exactly what images/install.sh (the Dockerfiles' install step) writes.

The runner and operator images are built once per machine (cached under
~/.cache/fondation/images, shared with the end-to-end tests); a cold build
takes a few minutes (mmdebstrap and pip downloads).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from fondation_contracts import image as contract
from fondation_operator import jobbuilder
from images import archive, build

ROOT = Path(__file__).resolve().parents[2]
APP_VERSION = yaml.safe_load((ROOT / "charts/fondation-operator/Chart.yaml").read_text())[
    "appVersion"
]
SITE = "usr/local/lib/python3.11/dist-packages"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="chroot into an image's root filesystem needs root"
)


def layer_members(path: str | Path) -> dict[str, tarfile.TarInfo]:
    with archive.open_layer(Path(path)) as layer:
        return {m.name: m for m in layer.getmembers()}


def extract(path: str | Path, dest: Path) -> Path:
    """The layer's files under `dest`, with the /dev/null a container runtime provides."""
    with archive.open_layer(Path(path)) as layer:
        layer.extractall(dest, filter="tar")
    if os.geteuid() == 0 and (dest / "dev").is_dir():
        os.mknod(dest / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        (dest / "dev/null").chmod(0o666)
    return dest


# ---- the pause image: cheap, built from scratch in every run ---------------------


def test_pause_image_is_reproducible_cached_and_named_after_the_chart(tmp_path: Path) -> None:
    first = build.build("pause", cache=tmp_path / "a")
    second = build.build("pause", cache=tmp_path / "b")
    assert not first.cached and not second.cached
    assert first.digest == second.digest
    assert Path(first.path).read_bytes() == Path(second.path).read_bytes()
    again = build.build("pause", cache=tmp_path / "a")
    assert again.cached and again.digest == first.digest and again.path == first.path
    info = archive.verify(Path(first.path))
    assert info.repo_tags == [f"fondation-pause:{APP_VERSION}"]
    assert info.config_digest == first.digest
    assert list(layer_members(first.path)) == ["pause"]


def test_cache_keeps_the_most_recently_used_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "KEEP", 2)
    paths = []
    for epoch in (build.EPOCH, build.EPOCH + 1, build.EPOCH + 2):
        monkeypatch.setattr(build, "EPOCH", epoch)  # another input: another archive
        paths.append(Path(build.build("pause", cache=tmp_path).path))
    assert len(set(paths)) == 3
    assert sorted(tmp_path.glob("fondation-pause-*.tar")) == sorted(paths[1:])
    assert not paths[0].with_suffix(".json").exists()


@needs_root
def test_pause_is_static_waits_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    built = build.build("pause", cache=tmp_path / "cache")
    root = extract(built.path, tmp_path / "root")
    # An empty root with one file: it runs only if it needs no shared library.
    proc = subprocess.Popen(["chroot", str(root), "/pause"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # still pausing
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_print_paths_prints_one_archive_path_per_image(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "images.build", "--print-paths", "pause"],
        cwd=ROOT,
        env={**os.environ, "FONDATION_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    (line,) = out.stdout.splitlines()
    assert Path(line).is_file() and Path(line).parent == tmp_path / "images"
    bad = subprocess.run(
        [sys.executable, "-m", "images.build", "runer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "unknown image runer" in bad.stderr


# ---- the runner and operator images (cached per machine) --------------------------


@pytest.fixture(scope="module")
def images() -> dict[str, build.Built]:
    return {b.name: b for b in build.build_all(("operator", "runner"))}


@pytest.fixture(scope="module")
def members(images: dict[str, build.Built]) -> dict[str, dict[str, tarfile.TarInfo]]:
    return {name: layer_members(b.path) for name, b in images.items()}


def test_runner_and_operator_archives_verify_and_follow_the_chart(
    images: dict[str, build.Built],
) -> None:
    for name, repository in (
        ("runner", contract.RUNNER_REPOSITORY),
        ("operator", contract.OPERATOR_REPOSITORY),
    ):
        info = archive.verify(Path(images[name].path))
        assert info.repo_tags == [f"{repository}:{APP_VERSION}"]
        assert info.config_digest == images[name].digest
        assert info.config.config.user == f"{contract.UID}:{contract.UID}"
        assert "PYTHONDONTWRITEBYTECODE=1" in info.config.config.env
    assert jobbuilder.RUNNER_UID == contract.UID


def test_each_image_holds_what_its_container_runs(
    members: dict[str, dict[str, tarfile.TarInfo]],
) -> None:
    runner, operator = members["runner"], members["operator"]
    cli = f"{SITE}/claude_agent_sdk/_bundled/claude"
    for m in (runner, operator):
        assert m["usr/bin/python"].issym()  # the Job runs `python -m fondation_runner`
        assert m["usr/local/bin/fondation"].mode == 0o755
        assert f"{SITE}/fondation_runner/__main__.py" in m
        assert "etc/ssl/certs/ca-certificates.crt" in m
        assert not any(n.startswith(("usr/bin/perl", "usr/bin/apt")) for n in m)
    assert runner["usr/bin/git"].isfile() and runner[cli].mode & 0o111
    assert cli not in operator and f"{SITE}/claude_agent_sdk/__init__.py" not in operator


def test_nothing_that_varies_between_builds_or_grants_privileges(
    members: dict[str, dict[str, tarfile.TarInfo]],
) -> None:
    for m in members.values():
        assert not [n for n in m if n.endswith(".pyc") or "/__pycache__" in n]
        assert not [n for n, i in m.items() if i.isfile() and i.mode & 0o6000], "setuid"
        assert not [n for n in m if n.startswith(("var/log/", "dev/", "proc/", "var/lib/apt/"))]
        assert {i.mtime for i in m.values()} == {build.EPOCH}
        assert not [n for n in m if n.endswith("direct_url.json")]


@needs_root
def test_images_start_as_the_non_root_user(images: dict[str, build.Built], tmp_path: Path) -> None:
    env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"]
    user = f"--userspec={contract.UID}:{contract.UID}"
    operator = extract(images["operator"].path, tmp_path / "operator")
    out = subprocess.run(
        ["chroot", user, str(operator), *env, "fondation", "operator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    passwd = (operator / "etc/passwd").read_text()
    assert f"fondation:x:{contract.UID}:{contract.UID}:" in passwd

    runner = extract(images["runner"].path, tmp_path / "runner")
    probe = (
        "import fondation_runner, claude_agent_sdk, subprocess, pathlib;"
        "cli = pathlib.Path(claude_agent_sdk.__file__).parent / '_bundled' / 'claude';"
        "run = lambda *a: subprocess.run(a, capture_output=True, text=True, check=True).stdout;"
        "print(run(str(cli), '--version'), run('git', '--version'))"
    )
    home = f"HOME={contract.HOME}"
    out = subprocess.run(
        ["chroot", user, str(runner), *env, home, "python", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "(Claude Code)" in out.stdout and "git version 2." in out.stdout


def _tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """path -> (kind, permission bits, sha256 or link target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", 0o777, str(path.readlink()))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777, "")
        else:
            out[rel] = ("file", st.st_mode & 0o7777, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def _layer_tree(path: str, prefix: str) -> dict[str, tuple[str, int, str]]:
    out: dict[str, tuple[str, int, str]] = {}
    with archive.open_layer(Path(path)) as layer:
        by_name = {m.name: m for m in layer.getmembers()}
        for name, m in sorted(by_name.items()):
            if not name.startswith(prefix + "/"):
                continue
            rel = name[len(prefix) + 1 :]
            if m.issym():
                out[rel] = ("link", 0o777, m.linkname)
            elif m.isdir():
                out[rel] = ("dir", m.mode, "")
            else:
                data = layer.extractfile(m)
                assert data is not None
                out[rel] = ("file", m.mode, hashlib.sha256(data.read()).hexdigest())
    return out


def test_project_files_are_exactly_what_install_sh_writes(
    images: dict[str, build.Built], tmp_path: Path
) -> None:
    """What the Dockerfiles' install step writes is what the archive holds
    (the operator: the runner differs only by its pinned wheels)."""
    dest = tmp_path / "rootfs"
    build.install_project("operator", dest)
    for written in ("usr/local/bin", f"{SITE}"):
        installed = _tree(dest / written)
        assert _layer_tree(images["operator"].path, written) == installed
    assert "fondation_operator/main.py" in _tree(dest / SITE)


def _dockerfile(flavour: str) -> str:
    return (ROOT / "images" / f"{flavour}.Dockerfile").read_text()


@pytest.mark.parametrize("flavour", ["runner", "operator"])
def test_dockerfiles_run_the_same_steps_and_start_the_same_way(flavour: str) -> None:
    text = _dockerfile(flavour)
    spec = build.SPECS[flavour]
    assert f"RUN sh /src/images/install.sh {flavour} /out\n" in text
    assert "COPY --from=install /out/ /\n" in text
    assert f"sh /tmp/rootfs-hook.sh / {contract.UID}" in text
    install = re.search(r"apt-get install -y --no-install-recommends ([^\\\n]+)", text)
    assert install is not None and install.group(1).split() == list(build.PACKAGES)
    container = spec.container
    assert f"\nUSER {container.user}\n" in text
    assert f"\nWORKDIR {container.working_dir}\n" in text
    assert f"\nCMD {json.dumps(container.cmd)}\n" in text
    env = re.search(r"\nENV (.+)\n", text)
    assert env is not None and env.group(1).split() == container.env
    for copied in re.findall(r"^COPY (\S+) /src/\1$", text, flags=re.MULTILINE):
        assert copied in build.PROJECT_INPUTS or copied.startswith("images/")
    for name in build.PROJECT_INPUTS:
        assert re.search(rf"^COPY .*\b{re.escape(name)}\b", text, flags=re.MULTILINE), name
