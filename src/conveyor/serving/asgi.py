"""The ASGI plumbing the scoring app and the dashboard share: types, routes, responses, a bounded body, deadlines.

No framework: a route table, one function per response kind, and the two rules every handler needs (a body is
read within a size and a time, and a deadline turns into an HTTP answer rather than a cancelled task).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from conveyor.serving.deadlines import Deadlines

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[int]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"
CLOSE: Headers = [(b"connection", b"close")]
DRAIN_LIMIT = 64 * 1024 * 1024


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


class BodyTooLarge(Exception):
    """The request body is over the limit given to `receive_body` (the rest was drained, so the client can read
    the answer)."""


@dataclass(frozen=True)
class Route:
    """One path: its metrics label, the methods it answers (GET routes answer HEAD too) and its handler."""

    label: str
    methods: tuple[str, ...]
    handler: Handler

    @property
    def allow(self) -> bytes:
        return ", ".join(self.methods).encode()


def _default(value: Any) -> Any:
    """JSON for what orjson does not know: numpy arrays and scalars, pandas objects, sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes of `value` (numpy and pandas values included)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, headers: Headers | None = None
) -> int:
    """One whole response: status, content type and length, `headers`, then the body. Returns the status."""
    start = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + headers if headers else start})
    await send({"type": "http.response.body", "body": body})
    return status


send_json = send_bytes  # the default content type is JSON


async def send_html(send: Send, status: int, html: str, headers: Headers | None = None) -> int:
    return await send_bytes(send, status, html.encode(), HTML, headers)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; `BodyTooLarge` past `limit` bytes (by content-length or as it arrives),
    `ClientGone` when the client disconnects first."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge()
        return body
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        await _drain(receive, message)
        raise BodyTooLarge()
    chunks, size = [body], len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _drain(receive, message)
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(receive: Receive, message: Message) -> None:
    """Read and drop the rest of an oversized body (up to a cap), so the client can read the answer."""
    drained = 0
    while message.get("more_body", False) and drained < DRAIN_LIMIT:
        message = await receive()
        drained += len(message.get("body", b""))


@contextlib.contextmanager
def deadline(deadlines: Deadlines, seconds: float, expired: Callable[[], Exception]) -> Iterator[None]:
    """Within `seconds` the block finishes, or the task running it is cancelled and `expired()` is raised in its
    place (a cancellation that came from elsewhere passes through unchanged)."""
    task = asyncio.current_task()
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        if task is not None:
            task.cancel()

    handle = deadlines.add(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if not fired or task is None:
            raise
        task.uncancel()
        raise expired() from None
    finally:
        deadlines.discard(handle)
