"""Per-attempt ingest tokens, derived rather than stored.

token = HMAC-SHA256(operator key, AnalysisJob uid and attempt). The operator
can check a token without reading any Secret (it holds no right to), every
AnalysisJob and every attempt gets a different one (another job's token, or
a leftover pod of an earlier attempt, is refused), re-creating an attempt's
Secret after a crash yields the same value, and a token dies with its
AnalysisJob because a new object with the same name has a new uid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_key() -> bytes:
    return secrets.token_bytes(32)


def for_attempt(key: bytes, uid: str, attempt: int) -> str:
    message = f"analysisjob/{uid}/attempt/{attempt}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(key: bytes, uid: str, attempt: int, presented: str) -> bool:
    """Constant-time comparison: timing must not reveal how much of a guess is right."""
    return hmac.compare_digest(for_attempt(key, uid, attempt).encode(), presented.encode())
