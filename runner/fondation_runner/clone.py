"""Checking out the repository to analyse.

One way for every source and ref: `git init`, a shallow `git fetch` of the
ref (branch, tag, 40-hex commit, or the remote's HEAD when empty), then a
detached checkout, so the recorded commit is exactly what was analysed.

The clone handles untrusted input, so it is careful about four things:
- it refuses repository hosts inside the cluster's own networks: an IP
  literal, `localhost`, or a name resolving to a loopback, private,
  link-local or otherwise non-public address (the runner would otherwise be
  a way to probe them), unless the operator's allow-list names the host;
  git's own error output is not passed on, only what kind of failure it was
  (it may quote what an internal service answered);
- it runs git with the Claude credentials scrubbed from the environment
  (only the analyze step may see them) and without a terminal prompt;
- it checks symbolic links out as plain files (`core.symlinks=false`): a
  link in the repository cannot make a later step read outside the clone;
- it watches the clone's size while git runs and stops it past a limit,
  so a huge repository is refused early with a clear message rather than
  filling the pod's disk.

A private repository's credentials (spec.source.credentials, mounted as
files) reach git alone, and never as text in a URL, an argument or an
environment variable: a token through a credential helper scoped to the
repository's host that copies the mounted file to git's standard input
(`tr < file`, so not even the helper's argv holds it); an SSH key through
ssh's own options, with the host key checked against the Secret's
`known_hosts` (StrictHostKeyChecking yes).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fondation_contracts import analysisjob as aj
from fondation_contracts.analysisjob import ALLOWED_HOSTS_ENV
from fondation_contracts.ingest import TOKEN_FILE_ENV
from fondation_contracts.text import one_line

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 500 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 900.0
_WATCH_INTERVAL_SECONDS = 0.25

SECRET_ENV_NAMES = frozenset(
    {"CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", TOKEN_FILE_ENV}
)
SECRET_ENV_PREFIXES = ("ANTHROPIC_", "CLAUDE_")

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]*$")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")

_GIT_CONFIG = (
    "-c",
    "core.symlinks=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "init.defaultBranch=main",
)


class CloneError(Exception):
    """The repository could not be checked out; the message says why."""


class RepositoryTooLarge(CloneError):
    pass


class HostRefused(CloneError):
    pass


Resolver = Callable[[str], list[str]]


def _resolve(host: str) -> list[str]:
    infos: list[Any] = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def repository_host(repository: str) -> str | None:
    """The network host of a clone URL (lowercase, no brackets); None for local paths."""
    if _SCP_LIKE.match(repository):
        return repository.split("@", 1)[1].split(":", 1)[0].lower()
    if repository.startswith(_URL_SCHEMES) and not repository.startswith("file://"):
        return (urlsplit(repository).hostname or "").lower()
    return None


def check_host(
    repository: str, allowed: Collection[str] = (), *, resolve: Resolver = _resolve
) -> None:
    """Raise HostRefused when the repository's host is not a public one and the
    allow-list (host names, addresses or networks) does not name it."""
    host = repository_host(repository)
    if host is None or _allowed(host, allowed):
        return
    hint = f"; an operator can allow it in {ALLOWED_HOSTS_ENV}"
    if not host:
        raise HostRefused(f"the repository URL names no host{hint}")
    if host == "localhost" or host.endswith(".localhost"):
        raise HostRefused(f"the repository host {host} is this machine{hint}")
    if _ip_literal(host) is not None:
        raise HostRefused(f"the repository host {host} is an IP address, not a name{hint}")
    try:
        addresses = resolve(host)
    except OSError:
        return  # git says that the name does not resolve
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global and not _allowed(str(ip), allowed):
            raise HostRefused(
                f"the repository host {host} resolves to {ip}, a private, loopback or "
                f"link-local address{hint}"
            )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`host` as an address, including the forms C resolvers accept (`127.1`, `0x7f.1`,
    `2130706433`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _allowed(host: str, allowed: Collection[str]) -> bool:
    ip = _ip_literal(host)
    for given in allowed:
        entry = given.strip().lower()
        if entry == host:
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


@dataclass(frozen=True)
class Checkout:
    root: Path
    """The clone's work tree."""
    source_dir: Path
    """What to analyse: `root`, or `root/subPath`."""
    commit: str


def git_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment git runs with: the caller's, minus every credential."""
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name in SECRET_ENV_NAMES or name.startswith(SECRET_ENV_PREFIXES):
            del env[name]
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_LFS_SKIP_SMUDGE"] = "1"
    return env


def repository_url(repository: str) -> str:
    """The URL git fetches from: remote URLs as given, local paths as `file://`.

    A local path becomes a `file://` URL because git ignores `--depth` for
    plain paths. Anything else (an option-like string, `ext::` transports)
    is refused.
    """
    if repository.startswith(_URL_SCHEMES) or _SCP_LIKE.match(repository):
        return repository
    if "::" in repository or repository.startswith("-") or not repository:
        raise CloneError(f"not a repository URL or local path: {redact(repository)!r}")
    path = Path(repository).expanduser().resolve()
    if not path.is_dir():
        raise CloneError(f"local repository {path} does not exist")
    return path.as_uri()


def redact(text: str) -> str:
    """Hide `user:password@` in URLs before they reach a message."""
    return _CREDENTIALS_IN_URL.sub(r"\1***@", text)


@contextlib.contextmanager
def credential_environment(url: str, directory: Path | None) -> Iterator[dict[str, str]]:
    """Extra environment for git to authenticate to `url` with the mounted
    Secret in `directory` (module docstring); empty without credentials."""
    if directory is None:
        yield {}
        return
    token = directory / aj.GIT_TOKEN_KEY
    key = directory / aj.GIT_SSH_KEY
    if token.is_file():
        yield _token_environment(url, token, directory / aj.GIT_USERNAME_KEY)
    elif key.is_file():
        with _ssh_environment(url, key, directory / aj.GIT_KNOWN_HOSTS_KEY) as env:
            yield env
    else:
        raise CloneError(
            f"the Git credentials Secret has neither {aj.GIT_TOKEN_KEY!r} nor {aj.GIT_SSH_KEY!r}"
        )


def _token_environment(url: str, token: Path, username_file: Path) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CloneError(
            f"a {aj.GIT_TOKEN_KEY!r} authenticates https:// repositories only, not {redact(url)}"
        )
    username = aj.GIT_DEFAULT_USERNAME
    if username_file.is_file():
        username = username_file.read_text().strip() or username
    if not re.fullmatch(r"[A-Za-z0-9._@+-]{1,100}", username):
        raise CloneError(f"the {aj.GIT_USERNAME_KEY!r} of the Git credentials is not a user name")
    helper = (
        '!f() { test "$1" = get || exit 0; '
        f"echo username={username}; printf password=; "
        f"tr -d '\\r\\n' < {shlex.quote(str(token))}; echo; }}; f"
    )
    scope = f"credential.{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    return _git_config_environment(
        {f"{scope}.helper": helper, f"{scope}.useHttpPath": "false"}, reset="credential.helper"
    )


@contextlib.contextmanager
def _ssh_environment(url: str, key: Path, known_hosts: Path) -> Iterator[dict[str, str]]:
    if not _SCP_LIKE.match(url) and not url.startswith("ssh://"):
        raise CloneError(f"an SSH key authenticates git@host:path repositories only, not {url}")
    if not known_hosts.is_file() or not known_hosts.read_text().strip():
        raise CloneError(
            f"the Git credentials Secret has an SSH key but no {aj.GIT_KNOWN_HOSTS_KEY!r}: "
            "the server's host key must be known in advance"
        )
    # ssh refuses a key others can read, and a mounted Secret is group-readable.
    scratch = Path(tempfile.mkdtemp(prefix="git-ssh-"))
    try:
        private = scratch / "id"
        private.touch(mode=0o600)
        private.write_bytes(key.read_bytes())
        command = [
            "ssh",
            "-i",
            str(private),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
        ]
        yield {"GIT_SSH_COMMAND": shlex.join(command)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _git_config_environment(values: dict[str, str], *, reset: str) -> dict[str, str]:
    """`git -c` settings as environment (GIT_CONFIG_COUNT...), out of every argv;
    `reset` first clears a helper the image's own configuration might set."""
    items = [(reset, ""), *values.items()]
    env = {"GIT_CONFIG_COUNT": str(len(items))}
    for index, (key, value) in enumerate(items):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def clone(
    repository: str,
    dest: Path,
    *,
    ref: str = "",
    sub_path: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    allowed_hosts: Collection[str] = (),
    resolve: Resolver = _resolve,
    credentials_dir: Path | None = None,
) -> Checkout:
    """Check `repository` out at `ref` into the empty or absent directory `dest`."""
    url = repository_url(repository)
    check_host(url, allowed_hosts, resolve=resolve)  # before any credential is set up
    with credential_environment(url, credentials_dir) as extra:
        return _clone(
            repository,
            url,
            dest,
            ref=ref,
            sub_path=sub_path,
            max_bytes=max_bytes,
            timeout=timeout,
            extra_env=extra,
        )


def _clone(
    repository: str,
    url: str,
    dest: Path,
    *,
    ref: str,
    sub_path: str,
    max_bytes: int,
    timeout: float,
    extra_env: dict[str, str],
) -> Checkout:
    if ref and not (_COMMIT.match(ref) or (_REF.match(ref) and ".." not in ref)):
        raise CloneError(f"not a branch, tag or 40-hex commit: {ref!r}")
    if dest.exists() and any(dest.iterdir()):
        raise CloneError(f"clone destination {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    git = _Git(dest, max_bytes=max_bytes, deadline=deadline)
    git.env.update(extra_env)

    git.run("init", "--quiet")
    git.run("remote", "add", "origin", url)
    wanted = ref or "HEAD"
    target = "FETCH_HEAD"
    try:
        git.run("fetch", "--quiet", "--depth", "1", "--no-tags", "origin", wanted)
    except RepositoryTooLarge:
        raise
    except CloneError as shallow_error:
        if not _COMMIT.match(ref):
            raise CloneError(
                f"cannot fetch {wanted!r} from {redact(repository)}: {shallow_error}"
            ) from None
        # Some servers refuse a shallow fetch of a bare commit id; the full
        # history contains it if it exists at all.
        git.run("fetch", "--quiet", "--no-tags", "origin")
        target = ref
    git.run("checkout", "--quiet", "--detach", target)
    commit = git.run("rev-parse", "HEAD").strip()
    if _COMMIT.match(ref) and commit != ref:
        raise CloneError(f"checked out {commit}, not the requested commit {ref}")
    return Checkout(root=dest, source_dir=_sub_directory(dest, sub_path), commit=commit)


def reopen(dest: Path, *, sub_path: str = "") -> Checkout:
    """The checkout another container of the pod made in `dest` (the clone's
    init container, which alone sees a private repository's credentials)."""
    git = _Git(dest, max_bytes=DEFAULT_MAX_BYTES, deadline=time.monotonic() + 60)
    commit = git.run("rev-parse", "HEAD").strip()
    return Checkout(root=dest, source_dir=_sub_directory(dest, sub_path), commit=commit)


def directory_size(path: Path) -> int:
    """Bytes used by the files under `path` (links not followed)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except FileNotFoundError:
                continue  # git renames its temporary files as it goes
    return total


def _sub_directory(root: Path, sub_path: str) -> Path:
    if not sub_path.strip("/"):
        return root
    relative = Path(sub_path.strip("/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise CloneError(f"subPath {sub_path!r} must stay inside the repository")
    source_dir = (root / relative).resolve()
    if not source_dir.is_relative_to(root.resolve()) or not source_dir.is_dir():
        raise CloneError(f"subPath {sub_path!r} is not a directory of the repository")
    return source_dir


class _Git:
    """Runs git in the clone, watching its size and the overall deadline."""

    def __init__(self, cwd: Path, *, max_bytes: int, deadline: float) -> None:
        self.cwd = cwd
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.env = git_environment()

    def run(self, *args: str) -> str:
        process = subprocess.Popen(
            ["git", *_GIT_CONFIG, *args],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while True:
                try:
                    stdout, stderr = process.communicate(timeout=_WATCH_INTERVAL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self._check_limits()
        except BaseException:
            process.kill()
            process.communicate()
            raise
        self._check_limits()
        if process.returncode != 0:
            # The detail goes to the pod's log only, never to status.
            logger.warning("git %s failed: %s", args[0], one_line(redact(stderr.strip()))[-2000:])
            raise CloneError(f"git {args[0]} failed ({process.returncode}): {_kind(stderr)}")
        return stdout

    def _check_limits(self) -> None:
        if time.monotonic() > self.deadline:
            raise CloneError("the clone took too long and was stopped")
        size = directory_size(self.cwd)
        if size > self.max_bytes:
            raise RepositoryTooLarge(
                f"the repository is larger than the {_megabytes(self.max_bytes)} limit "
                f"(stopped at {_megabytes(size)}); analyse a subPath or raise the limit"
            )


_FAILURES: tuple[tuple[str, str], ...] = (
    ("could not resolve host|name or service not known|temporary failure in name",
     "the host name does not resolve"),
    ("connection refused|failed to connect|couldn't connect|no route to host|unreachable",
     "cannot connect to the host"),
    ("timed out|timeout", "the connection timed out"),
    ("ssl|tls|certificate", "TLS or certificate problem"),
    ("authentication|could not read username|permission denied|403|401",
     "access denied (private repository?)"),
    ("couldn't find remote ref|no such ref|not our ref|unadvertised object",
     "no such branch, tag or commit"),
    ("not found|does not appear to be a git repository|404", "repository not found"),
    ("returned error|http", "the server answered with an error"),
)  # fmt: skip
"""git's stderr pattern -> what the failure is called in status; first match wins."""


def _kind(stderr: str) -> str:
    """What kind of failure git reports, in our words: its own output may quote
    what the server answered, which must not reach status."""
    for pattern, kind in _FAILURES:
        if re.search(pattern, stderr, re.IGNORECASE):
            return kind
    return "see the runner's log" if stderr.strip() else "no detail"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size} bytes"
