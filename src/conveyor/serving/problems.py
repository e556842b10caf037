"""Request failures as HTTP answers: status, kind (the metrics label) and a message for people."""

from __future__ import annotations

from typing import Any


class HTTPProblem(Exception):
    """A request the server answers with an error status instead of a score."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra


def bad_payload(message: str) -> HTTPProblem:
    """400: the body is JSON but not the shape the protocol expects."""
    return HTTPProblem(400, "bad_payload", message)


def request_error_status(exc: BaseException) -> int | None:
    """The 4xx status a score.py exception asks for (`status_code` 4xx, or a `field` attribute → 422)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500:
        return status
    if hasattr(exc, "field"):
        return 422
    return None
