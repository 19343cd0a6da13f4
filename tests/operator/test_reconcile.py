"""The reconciler against plain fakes (fast): what it does when the API
server refuses a runner's pod or Job, for good, for quota, or for now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import pytest

from fondation_operator import status
from fondation_operator.cache import running_keys, waiting
from fondation_operator.events import EventRecorder
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.errors import ApiError, from_response
from fondation_operator.kube.resources import JOBS, PODS, Resource
from fondation_operator.metrics import Metrics
from fondation_operator.observed import Key, ObservedAnalysisJob, ObservedJob
from fondation_operator.reconcile import Reconciler
from fondation_operator.settings import Settings

NS = "team"


def _body(name: str, second: int = 0) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": str(10 + second),
            "creationTimestamp": f"2026-01-01T00:00:{second:02d}Z",
        },
        "spec": {"source": {"repository": "https://example.com/a/b"}, "backend": "offline"},
    }


class View:
    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.crs = {(NS, b["metadata"]["name"]): ObservedAnalysisJob.from_body(b) for b in bodies}

    def analysisjob(self, key: Key) -> ObservedAnalysisJob | None:
        return self.crs.get(key)

    def analysisjobs(self) -> Iterable[ObservedAnalysisJob]:
        return self.crs.values()

    def jobs_of(self, key: Key) -> Iterable[ObservedJob]:
        return ()

    def jobs(self) -> Iterable[ObservedJob]:
        return ()


class FakeApi:
    """Creates refused by `refuse[plural]`; status patches applied to `view`."""

    def __init__(self, view: View, refuse: dict[str, ApiError]) -> None:
        self.view = view
        self.refuse = refuse
        self.created: list[tuple[str, bool]] = []

    async def create(
        self, res: Resource, body: dict[str, Any], namespace: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        self.created.append((res.plural, dry_run))
        if res.plural in self.refuse:
            raise self.refuse[res.plural]
        return body

    async def patch(
        self, res: Resource, name: str, patch: dict[str, Any], namespace: str, **_: Any
    ) -> dict[str, Any]:
        cr = self.view.crs[(namespace, name)]
        merged = {k: v for k, v in {**cr.raw_status, **patch["status"]}.items() if v is not None}
        body = _body(name)
        body["metadata"]["resourceVersion"] = str(int(cr.resource_version) + 1)
        body["metadata"]["creationTimestamp"] = cr.created
        body["status"] = merged
        self.view.crs[(namespace, name)] = ObservedAnalysisJob.from_body(body)
        return body


def _reconciler(view: View, api: FakeApi, cap: int = 2) -> Reconciler:
    return Reconciler(
        cast(KubeClient, api),
        Settings(max_concurrent_jobs=cap),
        view,
        EventRecorder(cast(KubeClient, api)),
        Metrics(),
        b"k" * 32,
    )


def _refusal(status_code: int, reason: str, message: str) -> ApiError:
    return from_response(status_code, {"kind": "Status", "reason": reason, "message": message})


def _events(reconciler: Reconciler) -> list[tuple[str, str]]:
    queue = reconciler.events._queue
    out = []
    while not queue.empty():
        event = queue.get_nowait()
        out.append((event.reason, event.message))
    return out


async def test_a_job_refused_for_good_fails_job_rejected_and_frees_its_slot() -> None:
    view = View(_body("bad"))
    api = FakeApi(
        view,
        {
            JOBS.plural: _refusal(
                422,
                "Invalid",
                'Job.batch "aj-bad-1" is invalid: spec.template.spec.containers[0].resources'
                '.requests: Invalid value: "64": must be less than or equal to cpu limit of 2\n'
                "\x1b[31m",
            )
        },
    )
    reconciler = _reconciler(view, api)
    assert await reconciler.reconcile((NS, "bad")) is None
    cr = view.crs[(NS, "bad")]
    assert cr.status.phase.value == "Failed"
    assert cr.status.failure is not None and cr.status.failure.reason == "JobRejected"
    assert "must be less than or equal to cpu limit of 2" in cr.status.failure.message
    assert "\x1b" not in cr.status.failure.message and "\n" not in cr.status.failure.message
    assert (PODS.plural, True) in api.created  # the pod was judged first, in a dry run
    assert reconciler.admission.free_slots(set()) == 2
    (event,) = _events(reconciler)
    assert event[0] == "JobRejected"


async def test_a_full_quota_queues_it_until_retry_at_and_gives_its_place() -> None:
    view = View(_body("waits", 0), _body("other", 1))
    message = (
        'pods "aj-waits-1" is forbidden: exceeded quota: cpu, requested: requests.cpu=500m, '
        "used: requests.cpu=1, limited: requests.cpu=1"
    )
    api = FakeApi(view, {PODS.plural: _refusal(403, "Forbidden", message)})
    reconciler = _reconciler(view, api, cap=1)
    delay = await reconciler.reconcile((NS, "waits"))
    assert delay is not None and delay > 0
    cr = view.crs[(NS, "waits")]
    assert cr.status.phase.value == "Queued" and cr.status.attempt == 0
    assert status.seconds_until(cr.status.retry_at) > 0
    assert cr.raw_status["conditions"][0]["reason"] == "QuotaExceeded"
    assert reconciler.admission.free_slots(set()) == 1
    # Meanwhile it is not waiting for a slot: the next in line gets it.
    assert [w.name for w in waiting(view, running_keys(view))] == ["other"]
    assert reconciler.wake_queue() == [(NS, "other")]
    # Reconciled again before its time, it only asks to be looked at later.
    assert await reconciler.reconcile((NS, "waits")) is not None
    assert [e[0] for e in _events(reconciler)] == ["QuotaExceeded"]


@pytest.mark.parametrize(
    "error",
    [
        _refusal(503, "ServiceUnavailable", "etcd leader changed"),
        _refusal(429, "TooManyRequests", "slow down"),
        _refusal(403, "Forbidden", "error looking up service account team/default: not found"),
    ],
)
async def test_transient_refusals_are_retried_with_backoff(error: ApiError) -> None:
    view = View(_body("later"))
    reconciler = _reconciler(view, FakeApi(view, {JOBS.plural: error}))
    with pytest.raises(ApiError):
        await reconciler.reconcile((NS, "later"))
    assert view.crs[(NS, "later")].status.phase.value == "Pending"
    assert reconciler.admission.free_slots(set()) == 2
