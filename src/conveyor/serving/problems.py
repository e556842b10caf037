"""Request failures as HTTP answers: status, kind (the metrics label), a message for people and, when one field of
the request is at fault, that field's path (`inputs[0].shape`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ProblemKind(StrEnum):
    """What went wrong, as counted in `conveyor_errors_total{kind=...}`."""

    BAD_JSON = "bad_json"
    BAD_PAYLOAD = "bad_payload"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_REQUEST = "invalid_request"
    TOO_LARGE = "too_large"
    TOO_MANY_RECORDS = "too_many_records"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_READY = "not_ready"
    TIMEOUT = "timeout"
    SCORE_ERROR = "score_error"
    SERVER_ERROR = "server_error"


class HTTPProblem(Exception):
    """A request the server answers with an error status instead of a score."""

    def __init__(
        self,
        status: int,
        kind: ProblemKind,
        message: str,
        *,
        field: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.field = field
        self.headers = headers or []
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON object sent to the client."""
        body: dict[str, Any] = {"error": self.message, "kind": str(self.kind)}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extra)
        return body


def bad_payload(message: str, field: str | None = None) -> HTTPProblem:
    """400: the body is JSON, but not in the shape the protocol expects; `field` is where."""
    return HTTPProblem(400, ProblemKind.BAD_PAYLOAD, message, field=field)


def too_many_records(count: int, limit: int, field: str | None) -> HTTPProblem:
    """413: one request asks for more records than the server scores at once."""
    return HTTPProblem(
        413,
        ProblemKind.TOO_MANY_RECORDS,
        f"{count} records in one request; the limit is {limit} (split the request, or raise --max-records)",
        field=field,
    )


def request_error_status(exc: BaseException) -> int | None:
    """The 4xx status a score.py exception asks for (`status_code` 4xx, or a `field` attribute → 422)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500:
        return status
    if hasattr(exc, "field"):
        return 422
    return None
