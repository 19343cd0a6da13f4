"""Which refusals of a runner Job are final, which wait for quota, which are retried."""

from __future__ import annotations

import pytest

from fondation_operator.kube.errors import from_response
from fondation_operator.refusals import MAX_MESSAGE, Verdict, classify, quota_never_fits, sanitize


def _error(status: int, reason: str, message: str) -> Exception:
    return from_response(status, {"kind": "Status", "reason": reason, "message": message})


@pytest.mark.parametrize(
    ("status", "reason", "message", "verdict"),
    [
        (
            422,
            "Invalid",
            'Job.batch "aj-x-1" is invalid: spec.template.spec.containers[0].resources.requests:'
            ' Invalid value: "64": must be less than or equal to cpu limit of 2',
            Verdict.REJECT,
        ),
        (
            403,
            "Forbidden",
            'pods "aj-x-1" is forbidden: maximum cpu usage per Container is 4, but limit is 64',
            Verdict.REJECT,
        ),
        (
            403,
            "Forbidden",
            "jobs.batch \"aj-x-1\" is forbidden: ValidatingAdmissionPolicy 'no-jobs' with "
            "binding 'no-jobs' denied request: runner Jobs are not allowed here",
            Verdict.REJECT,
        ),
        (
            403,
            "Forbidden",
            'jobs.batch "aj-x-1" is forbidden: exceeded quota: jobs, requested: '
            "count/jobs.batch=1, used: count/jobs.batch=0, limited: count/jobs.batch=0",
            Verdict.REJECT,
        ),
        (
            403,
            "Forbidden",
            'pods "aj-x-1" is forbidden: exceeded quota: compute, requested: '
            "requests.cpu=500m,requests.memory=1Gi, used: requests.cpu=3600m,"
            "requests.memory=1Gi, limited: requests.cpu=4,requests.memory=8Gi",
            Verdict.WAIT,
        ),
        (
            403,
            "Forbidden",
            'pods "aj-x-1" is forbidden: error looking up service account ns/default: '
            'serviceaccount "default" not found',
            Verdict.RETRY,
        ),
        (400, "BadRequest", "bad request", Verdict.REJECT),
        (413, "RequestEntityTooLarge", "too large", Verdict.REJECT),
        (409, "Conflict", "the object has been modified", Verdict.RETRY),
        (429, "TooManyRequests", "slow down", Verdict.RETRY),
        (500, "InternalError", "etcdserver: leader changed", Verdict.RETRY),
        (503, "ServiceUnavailable", "apiserver is shutting down", Verdict.RETRY),
        (404, "NotFound", 'namespaces "gone" not found', Verdict.RETRY),
    ],
)
def test_classification(status: int, reason: str, message: str, verdict: Verdict) -> None:
    refusal = classify(_error(status, reason, message), "the runner Job")  # type: ignore[arg-type]
    assert refusal.verdict is verdict
    assert str(status) in refusal.message
    if verdict is Verdict.REJECT:
        assert refusal.reason == "JobRejected"


def test_a_quota_that_one_runner_alone_exceeds_never_fits() -> None:
    message = (
        "exceeded quota: small, requested: requests.cpu=64,requests.memory=1Gi, used: "
        "requests.cpu=0,requests.memory=0, limited: requests.cpu=4,requests.memory=8Gi"
    )
    assert quota_never_fits(message) is True
    assert quota_never_fits(message.replace("requests.cpu=64", "requests.cpu=2")) is False
    assert quota_never_fits("exceeded quota: garbled") is None


def test_messages_are_one_bounded_line_without_control_characters_or_credentials() -> None:
    hostile = (
        "refused \x1b[31mred\x1b[0m\nsecond line\u202egnp.exe "
        "https://user:s3cr3t@git.example.com/a.git " + "x" * 5000
    )
    clean = sanitize(hostile)
    assert len(clean) <= MAX_MESSAGE
    assert "\x1b" not in clean and "\n" not in clean and "\u202e" not in clean
    assert "s3cr3t" not in clean and "https://***@git.example.com/a.git" in clean
