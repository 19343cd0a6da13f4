"""Which refusals of a runner Job by the API server are final.

Starting an attempt asks the API server twice: a dry run of the runner pod
(so LimitRanges, ResourceQuotas on pods, Pod Security and admission
policies that only judge pods are heard before a Job exists that could never
make one), then the Job itself. A refusal is one of three things:

- **Reject** (final): the request is wrong and asking again cannot help:
  400, 403, 405, 413, 415, 422 and any other 4xx not listed below; a
  ResourceQuota whose hard limit is below what one runner asks for. The
  AnalysisJob ends `Failed/JobRejected` with the API server's message.
- **Wait**: a ResourceQuota that the runner fits once other pods of the
  namespace finish. The AnalysisJob stays `Queued/QuotaExceeded` and is
  asked again later; meanwhile it is not at the head of the queue, so one
  namespace out of quota never holds the slots of others.
- **Retry**: the API server or the path to it is unwell (408, 409 other
  than AlreadyExists, 429, 5xx, a namespace being created or deleted); the
  work queue retries with backoff, as for any error.

The message is the API server's, without control characters, URL
credentials, or more than `MAX_MESSAGE` characters: it lands in status,
Events and Convex.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal

from fondation_operator import quantity
from fondation_operator.kube.errors import ApiError

MAX_MESSAGE = 1024
QUOTA_RETRY_SECONDS = 15.0

_TRANSIENT_STATUSES = {404, 408, 409, 410, 429}
_TRANSIENT_FORBIDDEN = (
    # ServiceAccount admission before the namespace's `default` account exists.
    "error looking up service account",
    # The namespace is being deleted (its AnalysisJobs go with it).
    "because it is being terminated",
    # A ResourceQuota the quota controller has not counted yet.
    "status unknown for quota",
)
_QUOTA = re.compile(
    r"exceeded quota: (?P<quota>[^,]+), requested: (?P<requested>\S+), "
    r"used: (?P<used>\S+), limited: (?P<limited>[^\s,]+(?:,[^\s,]+)*)"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


class Verdict(enum.Enum):
    REJECT = "reject"
    WAIT = "wait"
    RETRY = "retry"


@dataclass(frozen=True)
class Refusal:
    verdict: Verdict
    reason: str
    message: str


def sanitize(message: str, limit: int = MAX_MESSAGE) -> str:
    """One line, no control or bidi characters, no URL credentials, bounded."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", message)
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resources(listing: str) -> dict[str, Decimal]:
    out = {}
    for item in listing.split(","):
        name, _, value = item.partition("=")
        out[name] = quantity.parse(value)
    return out


def quota_never_fits(message: str) -> bool | None:
    """True if one runner alone asks more than the quota's hard limit; None if unknown."""
    match = _QUOTA.search(message)
    if not match:
        return None
    try:
        requested = _resources(match["requested"])
        limited = _resources(match["limited"])
    except quantity.QuantityError:
        return None
    return any(requested[name] > limit for name, limit in limited.items() if name in requested)


def classify(exc: ApiError, what: str) -> Refusal:
    """What to do about the API server refusing `what` (e.g. "the runner Job")."""
    message = sanitize(f"the API server refused {what}: {exc.status} {exc.reason}: {exc.message}")
    if exc.status >= 500 or exc.status in _TRANSIENT_STATUSES:
        return Refusal(Verdict.RETRY, exc.reason, message)
    if exc.status == 403:
        text = exc.message or ""
        if any(marker in text for marker in _TRANSIENT_FORBIDDEN):
            return Refusal(Verdict.RETRY, exc.reason, message)
        if "exceeded quota" in text:
            if quota_never_fits(text):
                return Refusal(Verdict.REJECT, "JobRejected", message)
            return Refusal(Verdict.WAIT, "QuotaExceeded", message)
    return Refusal(Verdict.REJECT, "JobRejected", message)
