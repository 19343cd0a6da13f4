"""The informer against a real API server: list, watch, re-watch, re-list."""

from __future__ import annotations

import asyncio

import pytest

from fondation_operator.kube.client import Body, KubeClient
from fondation_operator.kube.informer import Informer
from fondation_operator.kube.resources import CONFIGMAPS
from tests.cluster.objects import eventually

pytestmark = pytest.mark.cluster


def _cm(name: str, value: str, group: str = "g") -> Body:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"informed": "yes", "group": group}},
        "data": {"v": value},
    }


def _parse(body: Body) -> tuple[str, str, str]:
    return (
        body["metadata"]["name"],
        body["metadata"]["labels"]["group"],
        (body.get("data") or {}).get("v", ""),
    )


async def test_list_watch_and_relist(kube: KubeClient, namespace: str) -> None:
    await kube.create(CONFIGMAPS, _cm("before", "1"), namespace)
    await kube.create(
        CONFIGMAPS, _cm("unlabelled", "1") | {"metadata": {"name": "unlabelled"}}, namespace
    )
    changes: list[tuple[str, tuple[str, str, str]]] = []
    informer = Informer(
        kube,
        CONFIGMAPS,
        _parse,
        group_by=lambda item: item[1],
        on_change=lambda kind, item: changes.append((kind, item)),
        namespaces=[namespace],
        label_selector="informed=yes",
        watch_seconds=1,
    )
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert [name for name, _, _ in informer.values()] == ["before"]
        assert changes == [("ADDED", ("before", "g", "1"))]

        await kube.create(CONFIGMAPS, _cm("after", "1", group="h"), namespace)
        await eventually(
            lambda: _async(("after", "h", "1") in informer.values()), what="ADDED through the watch"
        )
        # The server ends each watch after a second: changes still arrive.
        await kube.patch(CONFIGMAPS, "before", {"data": {"v": "2"}}, namespace)
        await eventually(
            lambda: _async(("MODIFIED", ("before", "g", "2")) in changes),
            timeout=10,
            what="MODIFIED after a re-watch",
        )
        assert list(informer.group("h")) == [("after", "h", "1")]
        await kube.delete(CONFIGMAPS, "after", namespace)
        await eventually(
            lambda: _async(("DELETED", ("after", "h", "1")) in changes), what="DELETED"
        )
        assert list(informer.group("h")) == []
    finally:
        await informer.stop()

    # Deleted while nobody watched: the next listing reports it.
    await kube.delete(CONFIGMAPS, "before", namespace)
    informer.start()
    try:
        await eventually(
            lambda: _async(("DELETED", ("before", "g", "2")) in changes),
            what="DELETED found by a re-list",
        )
        assert list(informer.values()) == []
    finally:
        await informer.stop()


async def _async(value: bool) -> bool:
    return value
