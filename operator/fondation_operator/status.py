"""The one writer of AnalysisJob status.

Every transition goes through `transition()`, which derives the conditions
from the phase so that `phase`, `conditions` and `observedGeneration` can
never disagree, and writes them in one merge patch to the status subresource.
"""

from __future__ import annotations

import datetime
from typing import Any

from fondation_contracts.analysisjob import Phase
from fondation_contracts.text import clean
from fondation_operator.kube.client import KubeClient
from fondation_operator.kube.resources import ANALYSISJOBS
from fondation_operator.observed import ObservedAnalysisJob

FIELD_MANAGER = "fondation-operator"

# phase -> {condition type: (status, reason)}
_CONDITIONS: dict[Phase, dict[str, str]] = {
    Phase.PENDING: {"Ready": "False", "Succeeded": "Unknown", "Failed": "False"},
    Phase.QUEUED: {"Ready": "False", "Succeeded": "Unknown", "Failed": "False"},
    Phase.RUNNING: {"Ready": "False", "Succeeded": "Unknown", "Failed": "False"},
    Phase.SUCCEEDED: {"Ready": "True", "Succeeded": "True", "Failed": "False"},
    Phase.FAILED: {"Ready": "False", "Succeeded": "False", "Failed": "True"},
    Phase.CANCELLED: {"Ready": "False", "Succeeded": "False", "Failed": "False"},
}


_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(_FORMAT)


def later(seconds: float) -> str:
    """A status timestamp `seconds` from now (rounded up to the second)."""
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds + 1)
    return at.strftime(_FORMAT)


def seconds_until(stamp: str) -> float:
    """Seconds from now until a status timestamp; 0 if passed, empty or unreadable."""
    if not stamp:
        return 0.0
    try:
        at = datetime.datetime.strptime(stamp, _FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        return 0.0
    return max(0.0, (at - datetime.datetime.now(datetime.UTC)).total_seconds())


def conditions(
    cr: ObservedAnalysisJob, phase: Phase, reason: str, message: str
) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in cr.raw_status.get("conditions") or []}
    out = []
    for ctype, cstatus in _CONDITIONS[phase].items():
        old = previous.get(ctype) or {}
        changed = old.get("status") != cstatus
        out.append(
            {
                "type": ctype,
                "status": cstatus,
                "reason": reason,
                "message": message[:1024],
                "observedGeneration": cr.generation,
                "lastTransitionTime": now() if changed else old.get("lastTransitionTime", now()),
            }
        )
    return out


async def transition(
    client: KubeClient,
    cr: ObservedAnalysisJob,
    phase: Phase,
    *,
    reason: str,
    message: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """Write `phase` (+ extra status fields, camelCase) and return the new object."""
    patch: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": cr.generation,
        "conditions": conditions(cr, phase, reason, message),
        **fields,
    }
    if phase.terminal and not cr.status.completed_at:
        patch.setdefault("completedAt", now())
    return await write(client, cr, patch)


async def write(
    client: KubeClient, cr: ObservedAnalysisJob, patch: dict[str, Any]
) -> dict[str, Any]:
    """Merge-patch status fields (progress, result...) without a transition.
    Every string is cleaned of control characters: much of it comes from the
    runner (progress, failure messages) and ends up in `kubectl` output."""
    return await client.patch(
        ANALYSISJOBS,
        cr.name,
        {"status": _cleaned(patch)},
        cr.namespace,
        sub="status",
        field_manager=FIELD_MANAGER,
    )


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value
