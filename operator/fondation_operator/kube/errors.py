"""API errors with the status code the callers branch on."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: AlreadyExists on create, or a resourceVersion conflict on update."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class Invalid(ApiError):
    """422: the API server refused the object; `message` names the field."""


def from_response(status: int, body: Any) -> ApiError:
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    message = body.get("message", "") if isinstance(body, dict) else str(body)
    cls: type[ApiError] = {404: NotFound, 409: Conflict, 422: Invalid}.get(status, ApiError)
    return cls(status, reason, message, body)
