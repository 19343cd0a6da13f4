"""Deterministic names of everything the operator creates for an AnalysisJob.

Determinism is the crash-safety mechanism: the operator may die between any
two API calls, and on restart it creates the same names again; a 409
AlreadyExists then means "already done", never a duplicate.
"""

from __future__ import annotations

import hashlib

MAX_DNS_LABEL = 63


def _fit(base: str, suffix: str, limit: int = MAX_DNS_LABEL) -> str:
    """`base + suffix`, shortened with a stable hash of `base` when too long."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 1
    return f"{base[:keep].rstrip('-.')}-{digest}{suffix}"


def job_name(analysis: str, attempt: int) -> str:
    """`aj-<name>-<attempt>`: a DNS label, since the Job's pods are labelled with it."""
    return _fit(f"aj-{analysis}", f"-{attempt}")


def token_secret_name(analysis: str, attempt: int) -> str:
    """One Secret per attempt: an earlier attempt's pod never sees a later token."""
    return _fit(f"aj-{analysis}", f"-{attempt}-token", 253)


def result_configmap_name(analysis: str, index: int, generation: str = "") -> str:
    """Index 0 is the manifest (one name for the life of the job); contents are
    named by their course's generation, so a new course never overwrites them."""
    if not generation:
        return _fit(f"aj-{analysis}", f"-course-{index}", 253)
    return _fit(f"aj-{analysis}", f"-course-{generation}-{index}", 253)


def label_value(name: str) -> str:
    """Label values are at most 63 characters."""
    return _fit(name, "")
