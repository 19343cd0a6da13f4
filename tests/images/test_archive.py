"""The image packer (images/archive.py): the same files give the same bytes,
whatever order they were written in and whatever their mtimes; links, modes
and owners survive; and `verify` refuses an archive whose digests lie."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from functools import partial
from pathlib import Path

import pytest

from images import archive
from images.archive import ArchiveError, ContainerConfig, Entry

EPOCH = 1767225600
CONTAINER = ContainerConfig(user="65532:65532", env=["PATH=/usr/bin"], cmd=["/bin/true"])


def make_tree(root: Path, order: list[str], mtime: int) -> Path:
    """A small root filesystem, its files written in `order`."""
    files = {
        "usr/bin/tool": (b"#!/bin/sh\necho tool\n", 0o755),
        "usr/bin/su": (b"\x7fELF setuid", 0o4755),
        "etc/passwd": (b"root:x:0:0::/root:/bin/sh\n", 0o644),
        "usr/lib/python3.11/dist-packages/pkg/__init__.py": (b"VALUE = 1\n", 0o644),
        "usr/share/big.bin": (os.urandom(0) + b"x" * 300_000, 0o644),
    }
    for name in order:
        data, mode = files[name]
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    (root / "usr/bin/tool-link").hardlink_to(root / "usr/bin/tool")
    (root / "bin").symlink_to("usr/bin")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def layer_of(entries: list[Entry], tmp: Path, name: str = "layer.tar") -> tuple[Path, str]:
    out = tmp / name
    with out.open("wb") as f:
        digest, size = archive.write_layer(entries, f, EPOCH)
    assert size == out.stat().st_size
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    return out, digest


def members(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_same_files_give_the_same_layer_and_image_digest(tmp_path: Path) -> None:
    names = [
        "usr/bin/tool",
        "usr/bin/su",
        "etc/passwd",
        "usr/lib/python3.11/dist-packages/pkg/__init__.py",
        "usr/share/big.bin",
    ]
    a = make_tree(tmp_path / "a", names, mtime=1_000_000)
    b = make_tree(tmp_path / "b", list(reversed(names)), mtime=1_900_000_000)
    layer_a, digest_a = layer_of(list(archive.tree_entries(a, owner=(0, 0))), tmp_path, "a.tar")
    layer_b, digest_b = layer_of(list(archive.tree_entries(b, owner=(0, 0))), tmp_path, "b.tar")
    assert digest_a == digest_b
    images = [
        archive.write_archive(
            tmp_path / f"{n}.image.tar",
            layer=layer,
            diff_id_hex=digest,
            repo_tag="example:1",
            container=CONTAINER,
            epoch=EPOCH,
            created_by="test",
        )
        for n, layer, digest in (("a", layer_a, digest_a), ("b", layer_b, digest_b))
    ]
    assert images[0].config_digest == images[1].config_digest
    assert (tmp_path / "a.image.tar").read_bytes() == (tmp_path / "b.image.tar").read_bytes()
    # A changed byte changes the digest: the comparison above can fail.
    (b / "etc/passwd").write_bytes(b"root:x:0:0::/root:/bin/bash\n")
    _, digest_c = layer_of(list(archive.tree_entries(b, owner=(0, 0))), tmp_path, "c.tar")
    assert digest_c != digest_a


def test_modes_owners_links_and_mtimes_in_the_layer(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", ["usr/bin/tool", "usr/bin/su", "etc/passwd"], mtime=5)
    layer, _ = layer_of(list(archive.tree_entries(tree, owner=(0, 0))), tmp_path)
    m = members(layer)
    assert list(m) == sorted(m)
    assert {info.mtime for info in m.values()} == {EPOCH}
    assert {(info.uid, info.gid, info.uname, info.gname) for info in m.values()} == {(0, 0, "", "")}
    assert m["usr/bin/su"].mode == 0o4755
    assert m["usr/bin/tool"].isfile() and m["usr/bin/tool"].mode == 0o755
    assert m["usr/bin/tool-link"].islnk() and m["usr/bin/tool-link"].linkname == "usr/bin/tool"
    assert m["bin"].issym() and m["bin"].linkname == "usr/bin"
    assert m["usr"].isdir() and m["usr/bin"].isdir()


def _tar_with(tmp: Path, specs: list[tuple[str, bytes, str]]) -> Path:
    """A tar of (name, type, data or link target) members, in the given order."""
    path = tmp / "base.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in specs:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 123
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload.encode()))
            else:
                info.linkname = payload
                if kind == tarfile.CHRTYPE:
                    info.devmajor, info.devminor = 1, 3
                tar.addfile(info)
    return path


def test_hard_links_from_a_tar_point_at_the_first_path_in_sorted_order(tmp_path: Path) -> None:
    base = _tar_with(
        tmp_path,
        [
            ("./usr/lib/git-core/git", tarfile.REGTYPE, "git binary"),
            ("./usr/bin/git", tarfile.LNKTYPE, "./usr/lib/git-core/git"),
        ],
    )
    with tarfile.open(base) as tar:
        layer, _ = layer_of(list(archive.tar_entries(tar)), tmp_path)
    m = members(layer)
    # usr/bin/git sorts first: it now carries the data, and the other links to it.
    assert m["usr/bin/git"].isfile() and m["usr/bin/git"].size == len("git binary")
    assert m["usr/lib/git-core/git"].islnk()
    assert m["usr/lib/git-core/git"].linkname == "usr/bin/git"
    out = tmp_path / "x"
    with tarfile.open(layer) as tar:
        tar.extractall(out, filter="tar")
    assert (out / "usr/lib/git-core/git").read_text() == "git binary"


def test_runtime_and_emptied_directories_are_left_empty_and_parents_added(tmp_path: Path) -> None:
    base = _tar_with(
        tmp_path,
        [
            ("./dev", tarfile.DIRTYPE, ""),
            ("./dev/null", tarfile.CHRTYPE, ""),
            ("./proc", tarfile.DIRTYPE, ""),
            ("./proc/self", tarfile.SYMTYPE, "1"),
            ("./var/log", tarfile.DIRTYPE, ""),
            ("./var/log/dpkg.log", tarfile.REGTYPE, "2026-12-02 04:00 install"),
            ("./deep/a/b/c.txt", tarfile.REGTYPE, "c"),
        ],
    )
    with tarfile.open(base) as tar, (tmp_path / "l.tar").open("wb") as f:
        archive.write_layer(list(archive.tar_entries(tar)), f, EPOCH, emptied=("var/log",))
    m = members(tmp_path / "l.tar")
    assert "dev/null" not in m and "proc/self" not in m and "var/log/dpkg.log" not in m
    assert m["dev"].isdir() and m["proc"].isdir() and m["var/log"].isdir()
    assert all(m[p].isdir() and m[p].mode == 0o755 for p in ("deep", "deep/a", "deep/a/b"))


def test_a_later_entry_replaces_an_earlier_one(tmp_path: Path) -> None:
    base = _tar_with(tmp_path, [("./etc/motd", tarfile.REGTYPE, "base")])
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc/motd").write_text("overlay")
    with tarfile.open(base) as tar:
        layer, _ = layer_of(
            [*archive.tar_entries(tar), *archive.tree_entries(overlay, owner=(0, 0))], tmp_path
        )
    with tarfile.open(layer) as tar:
        names = tar.getnames()
        data = tar.extractfile("etc/motd")
        assert data is not None and data.read() == b"overlay"
    assert names.count("etc/motd") == 1


def _image(tmp: Path) -> Path:
    payload = tmp / "payload"
    payload.write_bytes(b"hello")
    entry = Entry(
        "hello", tarfile.REGTYPE, 0o644, 0, 0, size=5, opener=partial(archive.read_file, payload)
    )
    layer, digest = layer_of([entry], tmp)
    archive.write_archive(
        tmp / "image.tar",
        layer=layer,
        diff_id_hex=digest,
        repo_tag="example:1",
        container=CONTAINER,
        epoch=EPOCH,
        created_by="test",
    )
    return tmp / "image.tar"


def test_archive_is_a_docker_archive_with_honest_digests(tmp_path: Path) -> None:
    image = _image(tmp_path)
    [entry] = json.loads(_read(image, "manifest.json"))
    config_bytes = _read(image, entry["Config"])
    layer_bytes = _read(image, entry["Layers"][0])
    config = json.loads(config_bytes)
    assert entry["RepoTags"] == ["example:1"]
    assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()],
    }
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["User"] == "65532:65532"
    assert config["created"] == "2026-01-01T00:00:00Z"
    info = archive.verify(image)
    assert info.config_digest == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert info.layer_bytes == len(layer_bytes)


def _read(image: Path, name: str) -> bytes:
    with tarfile.open(image) as tar:
        f = tar.extractfile(name)
        assert f is not None, name
        return f.read()


def _rewrite(image: Path, change: dict[str, bytes]) -> None:
    """Replace some members of an archive, keeping the others."""
    with tarfile.open(image) as tar:
        items = [(m, _read(image, m.name) if m.isfile() else b"") for m in tar.getmembers()]
    with tarfile.open(image, "w") as tar:
        for member, old in items:
            data = change.get(member.name, old)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


def test_verify_refuses_a_layer_that_is_not_the_configs_diff_id(tmp_path: Path) -> None:
    image = _image(tmp_path)
    manifest = json.loads(_read(image, "manifest.json"))
    _rewrite(image, {manifest[0]["Layers"][0]: b"\0" * 1024})
    with pytest.raises(ArchiveError, match=r"diff_ids .* but the layer's sha256 is"):
        archive.verify(image)


def test_verify_refuses_a_config_whose_name_is_not_its_digest(tmp_path: Path) -> None:
    image = _image(tmp_path)
    manifest = json.loads(_read(image, "manifest.json"))
    config_name = manifest[0]["Config"]
    config = json.loads(_read(image, config_name))
    config["config"]["User"] = "0:0"
    _rewrite(image, {config_name: json.dumps(config).encode()})
    with pytest.raises(ArchiveError, match=r"has sha256 .*, not its name"):
        archive.verify(image)


def test_verify_refuses_what_is_not_an_image_archive(tmp_path: Path) -> None:
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveError, match="not a tar archive"):
        archive.verify(not_tar)
    no_manifest = _tar_with(tmp_path, [("./hello", tarfile.REGTYPE, "hi")])
    with pytest.raises(ArchiveError, match=r"manifest\.json is missing"):
        archive.verify(no_manifest)
