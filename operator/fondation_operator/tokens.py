"""Per-job ingest tokens, derived rather than stored.

token = HMAC-SHA256(operator key, AnalysisJob uid). The operator can check a
token without reading any Secret (it holds no right to), every AnalysisJob
gets a different one (another job's token is refused), re-creating the
job's Secret after a crash yields the same value, and a token dies with its
AnalysisJob because a new object with the same name has a new uid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_key() -> bytes:
    return secrets.token_bytes(32)


def for_analysis(key: bytes, uid: str) -> str:
    digest = hmac.new(key, f"analysisjob/{uid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(key: bytes, uid: str, presented: str) -> bool:
    """Constant-time comparison: timing must not reveal how much of a guess is right."""
    return hmac.compare_digest(for_analysis(key, uid).encode(), presented.encode())
