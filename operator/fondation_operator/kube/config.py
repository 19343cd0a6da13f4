"""Where the API server is and how to authenticate: kubeconfig or in-cluster."""

from __future__ import annotations

import base64
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(Exception):
    """The connection settings are missing or unusable."""


@dataclass(frozen=True)
class ConnectionConfig:
    server: str
    ca_path: str | None = None
    insecure: bool = False
    token: str | None = None
    token_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    namespace: str = "default"

    def __repr__(self) -> str:  # never print the token
        return f"ConnectionConfig(server={self.server!r}, namespace={self.namespace!r})"

    def current_token(self) -> str | None:
        """Re-read a projected token file: the kubelet rotates it."""
        if self.token_path:
            return Path(self.token_path).read_text().strip()
        return self.token


def _materialise(data_b64: str | None, path: str | None, base: Path, suffix: str) -> str | None:
    """kubeconfig allows inline base64 data or a file; TLS wants a file."""
    if path:
        p = Path(path)
        return str(p if p.is_absolute() else base / p)
    if data_b64:
        fd, name = tempfile.mkstemp(prefix="fondation-kube-", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(data_b64))
        return name
    return None


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            value = item.get(what)
            if isinstance(value, dict):
                return value
    raise ConfigError(f"kubeconfig: no {what} named {name!r}")


def from_kubeconfig(path: str | Path, context: str | None = None) -> ConnectionConfig:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"kubeconfig {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: not a mapping")
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ConfigError(f"kubeconfig {path}: no current-context")
    ctx = _named(doc.get("contexts", []), ctx_name, "context")
    cluster = _named(doc.get("clusters", []), ctx["cluster"], "cluster")
    user = _named(doc.get("users", []), ctx["user"], "user")
    base = path.parent
    return ConnectionConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_path=_materialise(
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority"),
            base,
            ".crt",
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_path=user.get("tokenFile"),
        cert_path=_materialise(
            user.get("client-certificate-data"), user.get("client-certificate"), base, ".crt"
        ),
        key_path=_materialise(user.get("client-key-data"), user.get("client-key"), base, ".key"),
        namespace=str(ctx.get("namespace") or "default"),
    )


def in_cluster() -> ConnectionConfig:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (SERVICE_ACCOUNT_DIR / "token").exists():
        raise ConfigError("not running in a cluster (no service account token)")
    ns_file = SERVICE_ACCOUNT_DIR / "namespace"
    return ConnectionConfig(
        server=f"https://{host}:{port}",
        ca_path=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token_path=str(SERVICE_ACCOUNT_DIR / "token"),
        namespace=ns_file.read_text().strip() if ns_file.exists() else "default",
    )


def load(kubeconfig: str | None = None, context: str | None = None) -> ConnectionConfig:
    """Explicit kubeconfig, else $KUBECONFIG, else in-cluster, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return from_kubeconfig(path.split(os.pathsep)[0], context)
    try:
        return in_cluster()
    except ConfigError:
        default = Path.home() / ".kube" / "config"
        if default.exists():
            return from_kubeconfig(default, context)
        raise ConfigError("no Kubernetes connection: set KUBECONFIG or run in a cluster") from None
