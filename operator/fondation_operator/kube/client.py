"""An asynchronous Kubernetes API client over aiohttp."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp

from fondation_operator.kube.config import ConnectionConfig
from fondation_operator.kube.errors import from_response
from fondation_operator.kube.resources import Resource

Body = dict[str, Any]
PatchType = Literal["merge", "strategic", "json", "apply"]
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


def ssl_context(config: ConnectionConfig) -> ssl.SSLContext | bool:
    if config.insecure:
        return False
    ctx = ssl.create_default_context(cafile=config.ca_path)
    if config.cert_path and config.key_path:
        ctx.load_cert_chain(config.cert_path, config.key_path)
    return ctx


class KubeClient:
    """One connection pool to the API server; use as an async context manager."""

    def __init__(self, config: ConnectionConfig, *, timeout_s: float = 30.0) -> None:
        self.config = config
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.config), limit=64)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(
        self, content_type: str | None = None, accept: str = "application/json"
    ) -> dict[str, str]:
        headers = {"Accept": accept}
        token = self.config.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        self.open()
        assert self._session is not None
        async with self._session.request(
            method,
            self.config.server + path,
            json=body if body is not None else None,
            params=params,
            headers=self._headers(content_type if body is not None else None, accept),
        ) as resp:
            payload: Any = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                raise from_response(resp.status, payload)
            return payload

    async def stream(
        self, path: str, params: dict[str, str], *, read_timeout: float
    ) -> AsyncIterator[Body]:
        """The events of a watch, one JSON object per line, until the server ends it."""
        self.open()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=read_timeout)
        async with self._session.get(
            self.config.server + path, params=params, headers=self._headers(), timeout=timeout
        ) as resp:
            if resp.status >= 400:
                raise from_response(resp.status, await resp.json(content_type=None))
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Body:
        result: Body = await self.request("GET", res.path(namespace, name))
        return result

    async def get_metadata(self, res: Resource, name: str, namespace: str | None = None) -> Body:
        """The object's metadata only (PartialObjectMetadata): a Secret's labels
        without its data ever reaching this process."""
        result: Body = await self.request("GET", res.path(namespace, name), accept=METADATA_ONLY)
        return result

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Body]:
        return [
            item
            async for item in self.iterate(
                res, namespace, label_selector=label_selector, field_selector=field_selector
            )
        ]

    async def iterate(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Body]:
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        while True:
            page = await self.request("GET", res.path(namespace), params=params)
            for item in page.get("items", []):
                yield item
            token = page.get("metadata", {}).get("continue")
            if not token:
                return
            params["continue"] = token

    async def create(
        self,
        res: Resource,
        body: Body,
        namespace: str | None = None,
        *,
        strict: bool = False,
        dry_run: bool = False,
    ) -> Body:
        """POST; with `dry_run` every admission check runs and nothing is stored."""
        params = {"fieldValidation": "Strict"} if strict else {}
        if dry_run:
            params["dryRun"] = "All"
        result: Body = await self.request(
            "POST", res.path(namespace), body=body, params=params or None
        )
        return result

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        sub: str = "",
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
    ) -> Body:
        params = {"fieldManager": field_manager} if field_manager else None
        result: Body = await self.request(
            "PATCH",
            res.path(namespace, name, sub),
            body=patch,
            params=params,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )
        return result

    async def apply(self, res: Resource, body: Body, *, field_manager: str) -> Body:
        """Server-side apply of a whole object (forced: this manager owns its fields)."""
        meta = body["metadata"]
        result: Body = await self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            body=body,
            params={"fieldManager": field_manager, "force": "true"},
            content_type=_PATCH_CONTENT_TYPES["apply"],
        )
        return result

    async def replace(
        self, res: Resource, name: str, body: Body, namespace: str | None = None, *, sub: str = ""
    ) -> Body:
        result: Body = await self.request("PUT", res.path(namespace, name, sub), body=body)
        return result

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation: Literal["Foreground", "Background", "Orphan"] = "Background",
    ) -> Body | None:
        result: Body | None = await self.request(
            "DELETE",
            res.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )
        return result
