"""A Git host on loopback: smart HTTP over TLS, served by `git http-backend`.

AnalysisJobs only accept `https://` (or `git@`) repositories, and runners
clone shallowly, which git's dumb HTTP transport cannot do; so tests and the
demo serve repositories the way a real forge does, with a self-signed
certificate the runner is told to trust (GIT_SSL_CAINFO).

With `token`, it is a private host: every request must carry HTTP Basic
credentials whose password is the token (any user name, as GitHub takes
`x-access-token`), else 401 with a `WWW-Authenticate` challenge, which is
what makes git ask its credential helper. It records every request line
and header it got (`seen`), so a test can check where a token travelled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

from aiohttp import web

from tests.cluster.controlplane import free_port


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Fondation",
        "GIT_AUTHOR_EMAIL": "dev@fondation.dev",
        "GIT_COMMITTER_NAME": "Fondation",
        "GIT_COMMITTER_EMAIL": "dev@fondation.dev",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    cert, key = directory / "git.crt", directory / "git.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host},DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class GitServer:
    """Serves bare repositories under `root` at https://<host>:<port>/<name>.git.

    `host` is loopback, or the tier-2 node's bridge address so pods reach it.
    With `token`, every request must carry it as HTTP Basic credentials.
    """

    def __init__(
        self, workdir: Path | None = None, host: str = "127.0.0.1", *, token: str | None = None
    ) -> None:
        self.host = host
        self.token = token
        self.seen: list[str] = []
        """Each request's line and headers (the Authorization header's kind only)."""
        self.refused = 0
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="fondation-git-"))
        self.root = self.workdir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self_signed(self.workdir, host)
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.requests = 0
        # Seconds each fetch of a repository waits before it is served: a
        # runner pod then stays in its clone step long enough to disrupt it.
        self.fetch_delays: dict[str, float] = {}

    def url(self, name: str) -> str:
        return f"https://{self.host}:{self.port}/{name}.git"

    def publish(self, source: Path, name: str, *, branch: str = "main") -> str:
        """Commit a copy of `source` as a bare repository `name`; returns the commit."""
        work = self.workdir / "work" / name
        shutil.copytree(source, work)
        _git("init", "--quiet", "--initial-branch", branch, cwd=work)
        _git("add", "-A", cwd=work)
        _git("commit", "--quiet", "-m", f"{name}: sample", cwd=work)
        commit = _git("rev-parse", "HEAD", cwd=work)
        bare = self.root / f"{name}.git"
        _git("clone", "--quiet", "--bare", str(work), str(bare), cwd=self.workdir)
        _git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=bare)
        _git("config", "http.receivepack", "false", cwd=bare)
        return commit

    def client_env(self) -> dict[str, str]:
        """What a git client needs to trust this server."""
        return {"GIT_SSL_CAINFO": str(self.cert)}

    # ---- serving -----------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        kind, _, value = request.headers.get("Authorization", "").partition(" ")
        if kind != "Basic":
            return False
        try:
            _, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), self.token.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        headers_seen = {
            k: (v.split(" ")[0] if k.lower() == "authorization" else v)
            for k, v in request.headers.items()
        }
        self.seen.append(f"{request.method} {request.path_qs} {headers_seen}")
        if not self._authorized(request):
            self.refused += 1
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Basic realm="git"'}, text="no\n"
            )
        body = await request.read()
        repository = request.path.strip("/").split(".git", 1)[0]
        if request.method == "POST" and repository in self.fetch_delays:
            await asyncio.sleep(self.fetch_delays[repository])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
        }
        for header in ("Git-Protocol", "Content-Encoding"):
            if header in request.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        return web.Response(status=status, body=payload, headers=headers)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.cert, self.key)
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=tls)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="git-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the Git server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        shutil.rmtree(self.workdir, ignore_errors=True)
