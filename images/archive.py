"""Single-layer image archives, written without a Docker engine or a registry.

An image here is one layer tar, a config JSON and a `manifest.json`: the
docker-archive format that `ctr -n k8s.io images import`, `kind load
image-archive`, `docker load` and `podman load` all read. The layer is built
from a root filesystem (a tar from mmdebstrap, plus directories laid over it)
so that the same files give the same bytes, and so the same image digest:

- entries sorted by path, every parent directory present;
- every mtime set to one epoch (SOURCE_DATE_EPOCH), numeric owners only;
- hard links kept as links to the first path of their group in that order;
- device nodes, FIFOs and the contents of /dev, /proc, /sys and /run dropped
  (the runtime mounts its own).

The image's identity is the sha256 of its config (`docker images --digests`
calls it the image ID; containerd's manifest is derived from it), and the
config names the layer by the sha256 of the uncompressed layer tar (its
`diff_id`). `verify` recomputes both, so a test or a loader can trust an
archive without a container engine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

CHUNK = 1 << 20
# Directories whose contents a container runtime provides (mounts) at run time.
RUNTIME_DIRS = ("dev", "proc", "sys", "run")


class ContainerConfig(BaseModel):
    """The `config` part of an image config: how a container of it starts."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    user: str = Field(alias="User")
    env: list[str] = Field(alias="Env")
    entrypoint: list[str] | None = Field(default=None, alias="Entrypoint")
    cmd: list[str] | None = Field(default=None, alias="Cmd")
    working_dir: str = Field(default="/", alias="WorkingDir")
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")


class RootFS(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = "layers"
    diff_ids: list[str]


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    created: str
    created_by: str


class ImageConfig(BaseModel):
    """The image config (OCI image-spec config, which Docker reads too)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    architecture: str
    os: str
    created: str
    config: ContainerConfig
    rootfs: RootFS
    history: list[HistoryEntry]


class ManifestEntry(BaseModel):
    """One image of a docker-archive's `manifest.json`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    config: str = Field(alias="Config")
    repo_tags: list[str] = Field(alias="RepoTags")
    layers: list[str] = Field(alias="Layers")


def canonical_json(model: BaseModel | list[ManifestEntry]) -> bytes:
    """Stable bytes: sorted keys, no spaces; what the digests are taken over."""
    if isinstance(model, list):
        data: object = [m.model_dump(by_alias=True, exclude_none=True) for m in model]
    else:
        data = model.model_dump(by_alias=True, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Entry:
    """One path of the layer, whatever it came from (a directory or a tar)."""

    name: str  # relative, no leading "./" or "/"
    kind: bytes  # tarfile.REGTYPE, DIRTYPE, SYMTYPE
    mode: int  # permission bits, with setuid/setgid/sticky
    uid: int
    gid: int
    size: int = 0
    linkname: str = ""
    # Same value for every path of one hard-link group; None when not linked.
    link_group: object = None
    opener: Callable[[], IO[bytes]] | None = None


def _normalize(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def read_file(path: Path) -> IO[bytes]:
    """An Entry's opener for a file on disk: `partial(read_file, path)`."""
    return path.open("rb")


def _inside(name: str, dirs: tuple[str, ...]) -> bool:
    return any(name.startswith(d + "/") for d in dirs)


def tree_entries(
    root: Path, prefix: str = "", owner: tuple[int, int] | None = None
) -> Iterator[Entry]:
    """Every path under `root`, as entries named `prefix/<relative path>`,
    owned by `owner` (uid, gid) when given, else by their owner on disk."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = base / name
            rel = _normalize(f"{prefix}/{path.relative_to(root).as_posix()}")
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            uid, gid = owner or (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                yield Entry(rel, tarfile.SYMTYPE, 0o777, uid, gid, linkname=str(path.readlink()))
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(rel, tarfile.DIRTYPE, perm, uid, gid)
            elif stat.S_ISREG(st.st_mode):
                group = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
                yield Entry(
                    rel,
                    tarfile.REGTYPE,
                    perm,
                    uid,
                    gid,
                    size=st.st_size,
                    link_group=group,
                    opener=partial(read_file, path),
                )
            # Sockets, FIFOs and device nodes have no place in an image.


def tar_entries(tar: tarfile.TarFile) -> Iterator[Entry]:
    """Every path of an open (uncompressed, seekable) tar, e.g. mmdebstrap's output."""
    members = tar.getmembers()
    by_name = {_normalize(m.name): m for m in members}
    linked = {_normalize(m.linkname) for m in members if m.islnk()}
    for m in members:
        name = _normalize(m.name)
        if not name:
            continue
        perm = m.mode & 0o7777
        if m.issym():
            yield Entry(name, tarfile.SYMTYPE, 0o777, m.uid, m.gid, linkname=m.linkname)
        elif m.isdir():
            yield Entry(name, tarfile.DIRTYPE, perm, m.uid, m.gid)
        elif m.isfile() or m.islnk():
            target = by_name[_normalize(m.linkname)] if m.islnk() else m
            target_name = _normalize(target.name)
            group = ("tar", target_name) if m.islnk() or name in linked else None
            yield Entry(
                name,
                tarfile.REGTYPE,
                perm,
                m.uid,
                m.gid,
                size=target.size,
                link_group=group,
                opener=partial(_extract, tar, target),
            )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = tar.extractfile(member)
    if f is None:
        raise ValueError(f"{member.name}: not a regular file in the tar")
    return f


class _HashingWriter(io.RawIOBase):
    """Writes through to `out` and hashes what passes, so a layer is read once."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


def write_layer(
    entries: Iterable[Entry], out: IO[bytes], epoch: int, emptied: tuple[str, ...] = ()
) -> tuple[str, int]:
    """Write the layer tar of `entries` (a later entry replaces an earlier one
    of the same path) to `out`, leaving out what is inside RUNTIME_DIRS and the
    `emptied` directories; return the tar's sha256 (hex) and size in bytes."""
    leave_out = RUNTIME_DIRS + emptied
    merged: dict[str, Entry] = {}
    for e in entries:
        if e.name and not _inside(e.name, leave_out):
            merged[e.name] = e
    for name in list(merged):
        parent = posixpath.dirname(name)
        while parent and parent not in merged:
            merged[parent] = Entry(parent, tarfile.DIRTYPE, 0o755, 0, 0)
            parent = posixpath.dirname(parent)
    writer = _HashingWriter(out)
    first_of_group: dict[object, str] = {}
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(merged):
            e = merged[name]
            info = tarfile.TarInfo(name)
            info.type = e.kind
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            info.mtime = epoch
            info.linkname = e.linkname
            if e.kind != tarfile.REGTYPE:
                tar.addfile(info)
                continue
            if e.link_group is not None and e.link_group in first_of_group:
                info.type = tarfile.LNKTYPE
                info.linkname = first_of_group[e.link_group]
                tar.addfile(info)
                continue
            if e.link_group is not None:
                first_of_group[e.link_group] = name
            if e.opener is None:
                raise ValueError(f"{name}: a regular file without contents")
            info.size = e.size
            with e.opener() as data:
                tar.addfile(info, data)
    return writer.sha.hexdigest(), writer.size


@dataclass(frozen=True)
class ArchiveInfo:
    """What `verify` found in an image archive."""

    path: Path
    repo_tags: list[str]
    config_digest: str  # "sha256:<hex>", the image ID
    diff_id: str  # "sha256:<hex>" of the uncompressed layer
    layer_bytes: int
    config: ImageConfig

    @property
    def layer_mb(self) -> float:
        return round(self.layer_bytes / 1e6, 1)


class ArchiveError(ValueError):
    """An image archive that does not hold what its manifest and config say."""


def write_archive(
    out: Path,
    *,
    layer: Path,
    diff_id_hex: str,
    repo_tag: str,
    container: ContainerConfig,
    epoch: int,
    created_by: str,
    architecture: str = "amd64",
) -> ArchiveInfo:
    """Wrap a layer tar into a docker-archive at `out` (written aside, then renamed)."""
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = ImageConfig(
        architecture=architecture,
        os="linux",
        created=created,
        config=container,
        rootfs=RootFS(diff_ids=[f"sha256:{diff_id_hex}"]),
        history=[HistoryEntry(created=created, created_by=created_by)],
    )
    config_bytes = canonical_json(config)
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    manifest = [
        ManifestEntry(
            config=f"{config_hex}.json",
            repo_tags=[repo_tag],
            layers=[f"{diff_id_hex}/layer.tar"],
        )
    ]
    members: list[tuple[str, bytes | Path | None]] = [
        (f"{config_hex}.json", config_bytes),
        (diff_id_hex, None),
        (f"{diff_id_hex}/layer.tar", layer),
        ("manifest.json", canonical_json(manifest)),
    ]
    partial = out.with_name(out.name + ".partial")
    with (
        partial.open("wb") as f,
        tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, content in sorted(members, key=lambda m: m[0]):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uname = info.gname = ""
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, bytes):
                info.mode, info.size = 0o644, len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.mode, info.size = 0o644, content.stat().st_size
                with content.open("rb") as data:
                    tar.addfile(info, data)
    partial.replace(out)
    return verify(out)


def verify(path: Path) -> ArchiveInfo:
    """Check an image archive: one image, one layer; the config's file name is
    its sha256 and the layer's sha256 is the config's diff_id. Raises ArchiveError."""
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by the `with` below
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{path}: not a tar archive ({exc})") from exc
    with tar:
        manifest = _read_member(tar, path, "manifest.json")
        try:
            entries = json.loads(manifest)
            images = [ManifestEntry.model_validate(e) for e in entries]
        except ValueError as exc:
            raise ArchiveError(
                f"{path}: manifest.json is not a docker-archive manifest: {exc}"
            ) from exc
        if len(images) != 1 or len(images[0].layers) != 1:
            raise ArchiveError(f"{path}: manifest.json must list one image of one layer")
        image = images[0]
        config_bytes = _read_member(tar, path, image.config)
        config_hex = hashlib.sha256(config_bytes).hexdigest()
        if image.config != f"{config_hex}.json":
            raise ArchiveError(
                f"{path}: config {image.config} has sha256 {config_hex}, not its name"
            )
        try:
            config = ImageConfig.model_validate_json(config_bytes)
        except ValueError as exc:
            raise ArchiveError(f"{path}: {image.config} is not an image config: {exc}") from exc
        layer = tar.extractfile(image.layers[0]) if image.layers[0] in tar.getnames() else None
        if layer is None:
            raise ArchiveError(f"{path}: layer {image.layers[0]} is missing")
        sha = hashlib.sha256()
        size = 0
        while chunk := layer.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
        diff_id = f"sha256:{sha.hexdigest()}"
        if config.rootfs.diff_ids != [diff_id]:
            raise ArchiveError(
                f"{path}: rootfs.diff_ids is {config.rootfs.diff_ids}, "
                f"but the layer's sha256 is {diff_id}"
            )
    return ArchiveInfo(
        path=path,
        repo_tags=image.repo_tags,
        config_digest=f"sha256:{config_hex}",
        diff_id=diff_id,
        layer_bytes=size,
        config=config,
    )


def _read_member(tar: tarfile.TarFile, path: Path, name: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    if f is None:
        raise ArchiveError(f"{path}: {name} is missing")
    return f.read()


@contextmanager
def open_layer(path: Path) -> Iterator[tarfile.TarFile]:
    """The layer of a (verified) single-layer archive, as an open tar."""
    with ExitStack() as stack:
        outer = stack.enter_context(tarfile.open(path, mode="r:"))
        manifest = json.loads(_read_member(outer, path, "manifest.json"))
        layer = outer.extractfile(manifest[0]["Layers"][0])
        if layer is None:
            raise ArchiveError(f"{path}: no layer")
        yield stack.enter_context(tarfile.open(fileobj=layer, mode="r:"))
