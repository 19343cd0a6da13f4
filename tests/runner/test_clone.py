from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fondation_runner.clone import (
    CloneError,
    HostRefused,
    RepositoryTooLarge,
    check_host,
    clone,
    credential_environment,
    git_environment,
    redact,
    repository_url,
)
from tests.cluster.git_server import GitServer
from tests.runner.helpers import git


@pytest.fixture
def history(git_repo: Path) -> dict[str, str]:
    """The origin with three commits on main, a tag on the first, a branch on the second."""
    first = git(git_repo, "rev-parse", "HEAD")
    git(git_repo, "tag", "v1.0", "--annotate", "--message", "first release")
    (git_repo / "CHANGES.md").write_text("second\n")
    git(git_repo, "add", "--all")
    git(git_repo, "commit", "--quiet", "--message", "second")
    second = git(git_repo, "rev-parse", "HEAD")
    git(git_repo, "branch", "stable")
    (git_repo / "CHANGES.md").write_text("third\n")
    git(git_repo, "commit", "--quiet", "--all", "--message", "third")
    third = git(git_repo, "rev-parse", "HEAD")
    return {"first": first, "second": second, "third": third}


def test_default_branch_is_checked_out_shallow(
    git_repo: Path, history: dict[str, str], tmp_path: Path
) -> None:
    checkout = clone(str(git_repo), tmp_path / "clone")

    assert checkout.commit == history["third"]
    assert (checkout.root / "CHANGES.md").read_text() == "third\n"
    assert git(checkout.root, "rev-list", "--count", "HEAD") == "1"  # shallow


def test_branch(git_repo: Path, history: dict[str, str], tmp_path: Path) -> None:
    checkout = clone(str(git_repo), tmp_path / "clone", ref="stable")

    assert checkout.commit == history["second"]
    assert (checkout.root / "CHANGES.md").read_text() == "second\n"


def test_tag_resolves_to_its_commit(
    git_repo: Path, history: dict[str, str], tmp_path: Path
) -> None:
    checkout = clone(git_repo.as_uri(), tmp_path / "clone", ref="v1.0")

    assert checkout.commit == history["first"]
    assert not (checkout.root / "CHANGES.md").exists()


def test_commit_that_no_ref_points_at(
    git_repo: Path, history: dict[str, str], tmp_path: Path
) -> None:
    git(git_repo, "branch", "--delete", "--force", "stable")  # `second` is now only history

    checkout = clone(str(git_repo), tmp_path / "clone", ref=history["second"])

    assert checkout.commit == history["second"]
    assert (checkout.root / "CHANGES.md").read_text() == "second\n"


def test_unknown_ref_is_a_clear_error(git_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(CloneError, match="cannot fetch 'no-such-branch'"):
        clone(str(git_repo), tmp_path / "clone", ref="no-such-branch")


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/x", "a..b", "main branch"])
def test_refs_that_are_not_refs_are_refused(git_repo: Path, tmp_path: Path, ref: str) -> None:
    with pytest.raises(CloneError, match="not a branch, tag or 40-hex commit"):
        clone(str(git_repo), tmp_path / "clone", ref=ref)


@pytest.mark.parametrize("source", ["ext::sh -c touch% /tmp/pwned", "-oProxyCommand=x", ""])
def test_sources_that_are_not_repositories_are_refused(source: str) -> None:
    with pytest.raises(CloneError, match="not a repository URL or local path"):
        repository_url(source)


def test_remote_urls_pass_through_and_local_paths_become_file_urls(tmp_path: Path) -> None:
    assert repository_url("https://github.com/o/r.git") == "https://github.com/o/r.git"
    assert repository_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert repository_url(str(tmp_path)) == tmp_path.resolve().as_uri()


def test_sub_path(git_repo: Path, tmp_path: Path) -> None:
    checkout = clone(str(git_repo), tmp_path / "clone", sub_path="taskq/")

    assert checkout.source_dir == (checkout.root / "taskq").resolve()
    assert (checkout.source_dir / "queue.py").is_file()


@pytest.mark.parametrize("sub_path", ["../outside", "/etc", "no-such-dir", "README.md"])
def test_sub_path_must_be_a_directory_inside(git_repo: Path, tmp_path: Path, sub_path: str) -> None:
    with pytest.raises(CloneError, match="subPath"):
        clone(str(git_repo), tmp_path / "clone", sub_path=sub_path)


def test_repository_over_the_size_limit_is_refused(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "data.bin").write_bytes(os.urandom(300_000))  # incompressible
    git(git_repo, "add", "--all")
    git(git_repo, "commit", "--quiet", "--message", "data")

    with pytest.raises(RepositoryTooLarge, match=r"larger than the 200000 bytes limit"):
        clone(str(git_repo), tmp_path / "clone", max_bytes=200_000)

    clone(str(git_repo), tmp_path / "roomy", max_bytes=2_000_000)  # the same, with room


def test_symbolic_links_are_checked_out_as_plain_files(git_repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("token")
    (git_repo / "leak").symlink_to(secret)
    git(git_repo, "add", "--all")
    git(git_repo, "commit", "--quiet", "--message", "link")

    checkout = clone(str(git_repo), tmp_path / "clone")

    leak = checkout.root / "leak"
    assert not leak.is_symlink()
    assert leak.read_text() == str(secret)  # the link's target path, not the secret


def test_git_runs_without_claude_credentials(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `git` wrapper first on PATH records the environment of every git call."""
    seen = tmp_path / "seen-env"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    real_git = next(
        Path(d) / "git" for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / "git").is_file()
    )
    wrapper = wrapper_dir / "git"
    wrapper.write_text(f'#!/bin/sh\nenv >> "{seen}"\nexec "{real_git}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{wrapper_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api-secret")
    monkeypatch.setenv("FONDATION_TOKEN_FILE", "/var/run/fondation/token/token")

    clone(str(git_repo), tmp_path / "clone")

    recorded = seen.read_text()
    assert "PATH=" in recorded  # the wrapper did run
    assert "secret" not in recorded
    assert "CLAUDE_CODE_OAUTH_TOKEN" not in recorded
    assert "FONDATION_TOKEN_FILE" not in recorded
    assert "GIT_TERMINAL_PROMPT=0" in recorded


def test_git_environment_keeps_the_rest() -> None:
    env = git_environment({"PATH": "/bin", "CLAUDE_X": "1", "ANTHROPIC_BASE_URL": "u"})
    assert env["PATH"] == "/bin"
    assert "CLAUDE_X" not in env
    assert "ANTHROPIC_BASE_URL" not in env


def test_credentials_in_urls_are_redacted() -> None:
    assert redact("https://user:pass@host/r.git") == "https://***@host/r.git"
    assert redact("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_destination_must_be_empty(git_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "clone"
    dest.mkdir()
    (dest / "something").write_text("x")
    with pytest.raises(CloneError, match="not empty"):
        clone(str(git_repo), dest)


def _resolver(table: dict[str, list[str]]) -> object:
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


DNS = {
    "github.com": ["140.82.121.4"],
    "rebind.example": ["140.82.121.4", "127.0.0.1"],
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "v6.example": ["fd00::1"],
}


@pytest.mark.parametrize(
    "repository",
    [
        "https://10.0.0.5/o/r.git",
        "https://127.1/o/r.git",
        "https://2130706433/o/r.git",
        "https://0x7f.0.0.1/o/r.git",
        "https://[::1]/o/r.git",
        "https://169.254.169.254/latest/meta-data",
        "https://8.8.8.8/o/r.git",  # public, but an address: no name, no TLS name check
        "https://localhost/o/r.git",
        "git@localhost:o/r.git",
        "https://git.localhost/o/r.git",
        "https://internal.example/o/r.git",
        "https://rebind.example/o/r.git",
        "git@metadata.example:o/r.git",
        "https://v6.example:8443/o/r.git",
    ],
)
def test_hosts_inside_the_cluster_are_refused(repository: str) -> None:
    with pytest.raises(HostRefused, match="FONDATION_ALLOWED_REPOSITORY_HOSTS"):
        check_host(repository, resolve=_resolver(DNS))  # type: ignore[arg-type]


def test_public_names_local_paths_and_allowed_hosts_pass() -> None:
    resolve = _resolver(DNS)
    check_host("https://github.com/o/r.git", resolve=resolve)  # type: ignore[arg-type]
    check_host("git@github.com:o/r.git", resolve=resolve)  # type: ignore[arg-type]
    check_host("https://unknown.example/o/r.git", resolve=resolve)  # type: ignore[arg-type]
    check_host("file:///srv/repo", resolve=resolve)  # type: ignore[arg-type]
    check_host("https://10.0.0.5/o/r.git", ["10.0.0.5"], resolve=resolve)  # type: ignore[arg-type]
    check_host(
        "https://internal.example/o/r.git",
        ["10.0.0.0/8"],
        resolve=resolve,  # type: ignore[arg-type]
    )
    check_host(
        "https://internal.example/o/r.git",
        ["Internal.Example"],
        resolve=resolve,  # type: ignore[arg-type]
    )


def test_a_refused_host_is_refused_before_git_runs(tmp_path: Path) -> None:
    with pytest.raises(HostRefused):
        clone("https://127.0.0.1:9/o/r.git", tmp_path / "clone")
    assert not (tmp_path / "clone").exists()


def test_gits_own_error_output_is_not_passed_on(tmp_path: Path) -> None:
    # Allowed, but nothing listens: git says "Failed to connect to 127.0.0.1 port 9 ...".
    with pytest.raises(CloneError) as failure:
        clone("https://127.0.0.1:9/o/r.git", tmp_path / "clone", allowed_hosts=["127.0.0.1"])
    assert str(failure.value).endswith("git fetch failed (128): cannot connect to the host")
    assert "port 9" not in str(failure.value)


# ---- private repositories ---------------------------------------------------------

LOCAL = ["127.0.0.1"]
"""The test Git host listens on loopback, which clones refuse unless allowed."""

PRIVATE_TOKEN = "ghp_" + "Zq9" * 12


@pytest.fixture
def private_host(sample_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitServer]:
    """A Git host over HTTPS that wants PRIVATE_TOKEN, trusted by git."""
    server = GitServer(token=PRIVATE_TOKEN)
    server.publish(sample_repo, "private")
    server.start()
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()


def credentials(directory: Path, **files: str) -> Path:
    """A mounted credentials Secret: one file per key (`ssh_privatekey`: the
    Secret's `ssh-privatekey`)."""
    directory.mkdir()
    for key, value in files.items():
        (directory / key.replace("ssh_", "ssh-")).write_text(value)
    return directory


def test_a_private_repository_is_cloned_with_its_token_which_shows_nowhere(
    private_host: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIT_TRACE logs every command git runs, helpers included, with its arguments.
    trace = tmp_path / "git-trace.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    secret = credentials(tmp_path / "git-credentials", token=PRIVATE_TOKEN + "\n")

    checkout = clone(
        private_host.url("private"),
        tmp_path / "clone",
        credentials_dir=secret,
        allowed_hosts=LOCAL,
    )

    assert (checkout.root / "taskq").is_dir()
    assert private_host.refused >= 1  # asked once without, as git does
    assert any("'Authorization': 'Basic'" in line for line in private_host.seen)
    config = (checkout.root / ".git" / "config").read_text()
    assert private_host.url("private") in config  # the URL as given, no credentials in it
    for text in (trace.read_text(), config, repr(checkout)):
        assert trace.read_text()  # the trace was written: the check means something
        assert PRIVATE_TOKEN not in text
    assert "credential" in trace.read_text()  # the helper ran, and its argv was clean


def test_a_private_repository_without_its_token_is_a_clear_error(
    private_host: GitServer, tmp_path: Path
) -> None:
    with pytest.raises(CloneError, match=r"git fetch failed|cannot fetch"):
        clone(private_host.url("private"), tmp_path / "clone", allowed_hosts=LOCAL)
    wrong = credentials(tmp_path / "wrong", token="ghp_wrong")
    with pytest.raises(CloneError) as refused:
        clone(
            private_host.url("private"),
            tmp_path / "clone2",
            credentials_dir=wrong,
            allowed_hosts=LOCAL,
        )
    assert "ghp_wrong" not in str(refused.value)


def test_the_token_goes_only_to_the_repositorys_host(tmp_path: Path) -> None:
    secret = credentials(tmp_path / "c", token=PRIVATE_TOKEN, username="octocat")
    with credential_environment("https://git.example.com:8443/a/b.git", secret) as env:
        keys = {env[k] for k in env if k.startswith("GIT_CONFIG_KEY_")}
        values = " ".join(env[k] for k in env if k.startswith("GIT_CONFIG_VALUE_"))
    assert keys == {
        "credential.helper",
        "credential.https://git.example.com:8443.helper",
        "credential.https://git.example.com:8443.useHttpPath",
    }
    assert "username=octocat" in values
    assert PRIVATE_TOKEN not in " ".join(env.values())


def refusal(url: str, secret: Path) -> str:
    with pytest.raises(CloneError) as refused, credential_environment(url, secret):
        pass
    return str(refused.value)


def test_credentials_that_do_not_fit_the_url_are_refused(tmp_path: Path) -> None:
    ssh_url, https_url = "git@github.com:acme/widgets.git", "https://github.com/acme/widgets.git"
    token = credentials(tmp_path / "t", token=PRIVATE_TOKEN)
    assert "https:// repositories only" in refusal(ssh_url, token)
    key = credentials(tmp_path / "k", ssh_privatekey="-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert "no 'known_hosts'" in refusal(ssh_url, key)
    assert "git@host:path repositories only" in refusal(https_url, key)
    empty = credentials(tmp_path / "e", other="x")
    assert "neither 'token' nor 'ssh-privatekey'" in refusal(https_url, empty)


def test_an_ssh_key_is_used_with_the_host_key_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    secret = credentials(
        tmp_path / "ssh",
        ssh_privatekey="-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n",
        known_hosts="github.com ssh-ed25519 AAAA\n",
    )
    with credential_environment("git@github.com:acme/widgets.git", secret) as env:
        command = shlex.split(env["GIT_SSH_COMMAND"])
        key = Path(command[command.index("-i") + 1])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600  # ssh refuses a readable key
        assert key.read_text() == (secret / "ssh-privatekey").read_text()
    assert "StrictHostKeyChecking=yes" in command
    assert f"UserKnownHostsFile={secret / 'known_hosts'}" in command
    assert not key.exists()  # gone once the clone is over
