"""uvicorn's httptools connection, guarded against clients that hold connections without finishing requests.

- Headers must arrive within `header_timeout` seconds of the connection opening or of a request's first byte;
  a connection that has sent part of a request is answered 408 and closed, one that has sent nothing is closed.
- At shutdown, a connection whose request body is still arriving (no response started) is closed at once
  instead of holding the graceful shutdown for a client that may never finish. Requests being scored finish.
- A request line and headers larger than `max_header_bytes` are answered 431 and the connection closed, one read
  past the bound (httptools itself sets none: a 64 MiB header was read whole).
(Slow bodies are the app's to cut off: it answers 408 after `body_timeout`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable


def timeout_response(seconds: float) -> bytes:
    body = b'{"error":"the request headers did not arrive within %g s","kind":"timeout"}' % seconds
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


def too_large_response(limit: int) -> bytes:
    body = b'{"error":"the request line and headers are larger than %d bytes","kind":"too_large"}' % limit
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header timeout and size bound, and a shutdown that does not wait for unfinished
    uploads."""

    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 64 * 1024
    timeout_hooks: ClassVar[tuple[Callable[[], None], ...]] = ()  # told of each header timeout (metrics)
    _header_timer: asyncio.TimerHandle | None = None
    _in_headers = False
    _awaiting_headers = True  # no request's headers complete since the last request ended (or the connection began)
    _header_bytes = 0
    _ended_in_read = False  # a request ended inside the piece being parsed: the piece is not all headers

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._ended_in_read = False
        super().data_received(data)
        if self._awaiting_headers and not self._ended_in_read and not self.transport.is_closing():
            self._header_bytes += len(data)  # all of this piece is (unfinished) request line and headers
            if self._header_bytes > self.max_header_bytes:
                self._disarm()
                self.transport.write(too_large_response(self.max_header_bytes))
                self.transport.close()
                return
        if self._in_headers and self._header_timer is None and not self.transport.is_closing():
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers, self._header_bytes, self._ended_in_read = True, 0, True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            self.transport.close()  # the app's receive() sees the disconnect
            return
        super().shutdown()

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._arm()  # a response is still being made for the previous request: wait for it first
            return
        if self._in_headers:
            self.transport.write(timeout_response(self.header_timeout))
            for hook in self.timeout_hooks:
                hook()
        self.transport.close()


def guarded_protocol(
    header_timeout: float, on_timeout: Callable[[], None] | None = None, max_header_bytes: int = 64 * 1024
) -> type[Any]:
    """The protocol class to hand uvicorn (`Config(http=...)`) with these settings."""
    return type(
        "ScoringHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "timeout_hooks": (on_timeout,) if on_timeout else (),
        },
    )
