"""A stage's requests split between its live release and a rollout's candidate, one HTTP request at a time.

While a route names a `Split`, the stage's forwarder reads each connection as HTTP/1.1 (httptools, the parser
uvicorn uses) instead of piping bytes, and sends every request on to the live server or the candidate over
kept-alive connections:

- canary: the candidate answers `weight`% of requests. A request with an `X-Conveyor-Key` header goes where the
  key's hash falls (the same caller always sees the same version at a weight); one without is drawn at random.
- shadow: the live server answers every request; a copy goes to the candidate after the answer was sent, and
  the candidate's answer is only compared and counted. A candidate that hangs or fails never delays a caller;
  when too many copies are in flight, copies are dropped (and counted).

Every answer carries `X-Conveyor-Release`. Per package digest, the figures (requests, errors, latency buckets,
shadow outcomes) are written as one JSON line a second to the stats file beside the route, which `conveyor
rollout status` and `rollout watch` read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import json
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

import httptools

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from pathlib import Path

    from conveyor.release.routes import Route, Split

KEY_HEADER = b"x-conveyor-key"
RELEASE_HEADER = b"x-conveyor-release"
MAX_BODY = 16 * 1024 * 1024  # what one request may carry through the split (the servers have their own bounds)
SHADOW_IN_FLIGHT = 64
SHADOW_TIMEOUT = 10.0
BACKEND_TIMEOUT = 120.0
STATS_LINES = 3600  # an hour of one-second lines is kept
LATENCY_BOUNDS_MS = (  # the latency buckets' upper bounds, in ms
    (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)
)
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
}


def goes_to_candidate(split: Split, key: bytes | None, draw: Callable[[], float] = random.random) -> bool:
    """Whether a canary's request goes to the candidate: by the key's hash when it has one, else by a draw."""
    if split.mode != "canary" or split.weight <= 0:
        return False
    if split.weight >= 100:
        return True
    if key:
        bucket = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % 10000
        return bucket < split.weight * 100
    return draw() * 100 < split.weight


@dataclass
class Figures:
    """One package's figures through the split, counted since the forwarder started."""

    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    latency_sum_ms: float = 0.0
    shadow: dict[str, int] = field(default_factory=dict)  # same | differs | error | dropped

    def observe(self, milliseconds: float, failed: bool) -> None:
        self.requests += 1
        self.errors += failed
        self.latency_sum_ms += milliseconds
        self.latency[bisect.bisect_left(LATENCY_BOUNDS_MS, milliseconds)] += 1


@dataclass
class Stats:
    """Figures per (package digest, role: live, candidate or shadow), written a line a second."""

    path: Path
    figures: dict[tuple[str, str], Figures] = field(default_factory=dict)
    changed: bool = False
    lines: int = 0

    def of(self, digest: str, role: str) -> Figures:
        self.changed = True
        found = self.figures.get((digest, role))
        if found is None:
            found = self.figures[(digest, role)] = Figures()
        return found

    def write(self) -> None:
        """Append the current figures as one line (time, per digest and role); keep the last `STATS_LINES`."""
        if not self.changed:
            return
        self.changed = False
        line = {
            "at": time.time(),
            "bounds_ms": LATENCY_BOUNDS_MS,
            "figures": [
                {
                    "package": digest,
                    "role": role,
                    "requests": f.requests,
                    "errors": f.errors,
                    "latency": f.latency,
                    "latency_sum_ms": round(f.latency_sum_ms, 3),
                    "shadow": f.shadow,
                }
                for (digest, role), f in sorted(self.figures.items())
            ],
        }
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        self.lines += 1
        if self.lines > 2 * STATS_LINES:
            kept = self.path.read_text().splitlines()[-STATS_LINES:]
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text("\n".join(kept) + "\n")
            os.replace(tmp, self.path)
            self.lines = len(kept)


@dataclass(eq=False, slots=True)
class Request:
    """One request as the parser read it. What goes to a server is the bytes as the caller sent them when one
    read held exactly this request and no transfer coding (the common case), else the request written anew from
    what was parsed, with a content-length: never framing the server could read otherwise than the parser did."""

    method: bytes = b""
    target: bytes = b""
    keep_alive: bool = True
    key: bytes | None = None
    coded: bool = False  # a transfer-encoding header came
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    read: bytes = b""

    def raw(self) -> bytes:
        if self.read:
            return self.read
        lines = [b"%s: %s\r\n" % (name, value) for name, value in self.headers if name.lower() not in HOP_BY_HOP]
        if not any(name.lower() == b"host" for name, _ in self.headers):
            lines.append(b"host: 127.0.0.1\r\n")
        self.read = b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (
            self.method,
            self.target,
            b"".join(lines),
            len(self.body),
            self.body,
        )
        return self.read


@dataclass(eq=False, slots=True)
class Exchange:
    """One request on its way to one server, and what came back so far."""

    request: Request
    port: int
    release: int
    digest: str
    role: str  # live | candidate | shadow
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    keep_alive: bool = True
    sent: bool = False  # some of the answer reached the caller
    tries: int = 0
    body: bytearray | None = None  # kept when a shadow compares it
    shadow: Split | None = None  # a live answer whose copy goes to this shadow
    expected: tuple[int, bytes] | None = None  # a shadow copy: the live answer it is compared with

    def milliseconds(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class Owner(Protocol):
    """What an upstream connection reports to: a caller's connection, or the shadow copies."""

    def answer_bytes(self, upstream: Upstream, exchange: Exchange, data: bytes) -> None: ...
    def answered(self, upstream: Upstream, exchange: Exchange) -> None: ...
    def failed(self, upstream: Upstream, exchange: Exchange, error: BaseException) -> None: ...
    def closed(self, upstream: Upstream) -> None: ...


class Upstream(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection to a server on 127.0.0.1, one exchange at a time. The answer is parsed
    only to find its end and status (and its body, when a shadow compares it); its bytes go to the owner."""

    def __init__(self, owner: Owner, port: int, watched: set[Upstream]) -> None:
        self.owner = owner
        self.port = port
        self.watched = watched
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.complete = False
        self.used = False  # answered before: a close before the next answer may be a kept-alive timeout
        self.deadline = 0.0

    def send(self, exchange: Exchange, timeout: float) -> None:
        assert self.transport is not None  # noqa: S101 -- narrows for mypy: sent only once connected
        self.exchange = exchange
        self.complete = False
        exchange.tries += 1
        self.deadline = time.perf_counter() + timeout
        self.transport.write(exchange.request.raw())

    def overdue(self, now: float) -> None:
        """Fail the exchange if its server has not answered by its deadline (`Splitter.keep_watching`)."""
        if self.exchange is not None and now > self.deadline:
            self._fail(self.exchange, TimeoutError())

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # create_connection gives a Transport
        self.watched.add(self)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing was asked: a server that talks out of turn is not kept
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as bad:
            self._fail(exchange, bad)
            return
        self.owner.answer_bytes(self, exchange, data)
        if self.complete:
            self._end()
            self.used = True
            if not exchange.keep_alive:
                self.close()
            self.owner.answered(self, exchange)

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.status = self.parser.get_status_code()
            self.exchange.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None and self.exchange.body is not None:
            self.exchange.body += body

    def on_message_complete(self) -> None:
        self.complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.watched.discard(self)
        if self.exchange is not None:
            self._fail(self.exchange, exc or Closed("the server closed the connection before answering"))
        self.owner.closed(self)

    def _end(self) -> None:
        self.exchange = None

    def _fail(self, exchange: Exchange, error: BaseException) -> None:
        self._end()
        self.close()
        self.owner.failed(self, exchange, error)


async def connect(owner: Owner, port: int, watched: set[Upstream]) -> Upstream:
    _, upstream = await asyncio.get_running_loop().create_connection(
        lambda: Upstream(owner, port, watched), "127.0.0.1", port
    )
    return upstream


def _unavailable(exchange: Exchange, error: BaseException, close: bool) -> bytes:
    problem = f"release {exchange.release}'s server did not answer ({type(error).__name__})"
    data = json.dumps({"error": problem, "kind": "unavailable"}).encode()
    return _response(502, _headers(exchange.release, b"application/json", len(data)), data, close)


def _retry(upstream: Upstream, exchange: Exchange, error: BaseException) -> bool:
    """A kept-alive connection the server closed before answering (its idle timeout) is tried again once."""
    return isinstance(error, ConnectionError) and upstream.used and exchange.tries == 1


class Splitter:
    """The split connections of one forwarder: their figures and the shadow copies they share."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.upstreams: set[Upstream] = set()
        self.shadows = Shadows(stats, self.upstreams)

    def connection(self, client: asyncio.Transport, route: Callable[[], Route | None]) -> SplitConnection:
        return SplitConnection(self, client, route)

    async def keep_watching(self) -> None:
        """Once a second: write the figures, and fail every exchange whose server is past its deadline."""
        while True:
            await asyncio.sleep(1)
            with contextlib.suppress(OSError):
                self.stats.write()
            now = time.perf_counter()
            for upstream in list(self.upstreams):
                upstream.overdue(now)

    async def close(self) -> None:
        self.shadows.close()


class SplitConnection:
    """A caller's connection during a rollout: each request read whole, sent to the live server or the candidate
    over this connection's own kept-alive connections (one each), the answer streamed back as it comes with
    `X-Conveyor-Release` added; requests a caller pipelines are answered in order."""

    PIPELINED = 16  # requests read ahead of the one being answered before reading pauses

    def __init__(self, splitter: Splitter, client: asyncio.Transport, route: Callable[[], Route | None]) -> None:
        self.splitter = splitter
        self.client = client
        self.route = route
        self.parser = httptools.HttpRequestParser(self)
        self.request = Request()
        self.waiting: deque[Request] = deque()
        self.exchange: Exchange | None = None
        self.upstreams: dict[int, Upstream] = {}
        self.head = b""
        self.refusal: bytes | None = None
        self.eof = False
        self.gone = False
        self.paused = False
        self.partial = False  # a request begun and not yet complete

    # --- the caller's side: asyncio.Protocol's callbacks, through the forwarder's connection ----------------
    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return
        fresh, before = not self.partial, len(self.waiting)
        try:
            self.parser.feed_data(data)
            if fresh and not self.partial and len(self.waiting) == before + 1 and not self.waiting[-1].coded:
                self.waiting[-1].read = data  # this read was that one request: it goes on as it came
        except httptools.HttpParserUpgrade:
            self._refuse(400, "a split stage does not upgrade connections", "bad_request")
        except httptools.HttpParserError as bad:
            if isinstance(bad.__context__, TooLarge):  # httptools wraps what a callback raises
                self._refuse(413, str(bad.__context__), "too_large")
            else:
                self._refuse(400, f"the request is not valid HTTP/1.1 ({bad})", "bad_request")
        if len(self.waiting) >= self.PIPELINED and not self.paused:
            self.paused = True
            self.client.pause_reading()
        self._next()

    def eof_received(self) -> bool:
        self.eof = True
        self._next()
        return True  # the answers still in flight are written before the connection closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        for upstream in list(self.upstreams.values()):
            upstream.close()
        self.upstreams.clear()

    def pause_writing(self) -> None:
        for upstream in self.upstreams.values():
            if upstream.transport is not None:
                upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        for upstream in self.upstreams.values():
            if upstream.transport is not None:
                upstream.transport.resume_reading()

    # --- httptools' request callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.request = Request()
        self.partial = True

    def on_url(self, url: bytes) -> None:
        self.request.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.headers.append((name, value))
        size = len(name)
        if size == len(KEY_HEADER) and name.lower() == KEY_HEADER:
            self.request.key = value
        elif size == len(b"transfer-encoding") and name.lower() == b"transfer-encoding":
            self.request.coded = True

    def on_headers_complete(self) -> None:
        self.request.method = self.parser.get_method()
        self.request.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.request.body += body
        if len(self.request.body) > MAX_BODY:
            raise TooLarge(f"the request body is over {MAX_BODY} bytes")

    def on_message_complete(self) -> None:
        self.partial = False
        self.waiting.append(self.request)

    # --- answering, one request at a time ----------------------------------------------------------------
    def _next(self) -> None:
        if self.exchange is not None or self.gone:
            return
        if not self.waiting:
            if self.refusal is not None:
                self.client.write(self.refusal)
                self.client.close()
            elif self.eof:
                self.client.close()
            elif self.paused:
                self.paused = False
                self.client.resume_reading()
            return
        request = self.waiting.popleft()
        route = self.route()
        if route is None:
            self.client.close()
            return
        split = route.split
        if split is not None and goes_to_candidate(split, request.key):
            exchange = Exchange(request, split.port, split.release, split.digest, "candidate")
        else:
            exchange = Exchange(request, route.port, route.release, route.digest, "live")
            if split is not None and split.mode == "shadow":
                exchange.body, exchange.shadow = bytearray(), split
        self.exchange = exchange
        self._send(exchange)

    def _send(self, exchange: Exchange) -> None:
        upstream = self.upstreams.get(exchange.port)
        if upstream is not None and upstream.open and upstream.exchange is None:
            upstream.send(exchange, BACKEND_TIMEOUT)
            return
        spawn(self._connect(exchange))

    async def _connect(self, exchange: Exchange) -> None:
        try:
            upstream = await connect(self, exchange.port, self.splitter.upstreams)
        except OSError as error:
            self._unanswered(exchange, error)
            return
        if self.gone:
            upstream.close()
            return
        self.upstreams[exchange.port] = upstream
        upstream.send(exchange, BACKEND_TIMEOUT)

    # --- what the upstream connections report ------------------------------------------------------------
    def answer_bytes(self, upstream: Upstream, exchange: Exchange, data: bytes) -> None:
        if self.gone:
            return
        if not exchange.sent:  # the release header goes after the status line
            data = self.head + data
            end = data.find(b"\r\n")
            if end < 0:
                self.head = data
                return
            self.head = b""
            data = b"%s%s: %d\r\n%s" % (data[: end + 2], RELEASE_HEADER, exchange.release, data[end + 2 :])
            exchange.sent = True
        self.client.write(data)

    def answered(self, upstream: Upstream, exchange: Exchange) -> None:
        self.splitter.stats.of(exchange.digest, exchange.role).observe(exchange.milliseconds(), exchange.status >= 500)
        self.exchange = None
        if exchange.shadow is not None and exchange.body is not None:
            self.splitter.shadows.send(exchange.shadow, exchange.request, (exchange.status, bytes(exchange.body)))
        if not (exchange.keep_alive and exchange.request.keep_alive):
            self.client.close()  # the server or the caller said close
            self.gone = True
            return
        self._next()

    def failed(self, upstream: Upstream, exchange: Exchange, error: BaseException) -> None:
        if self.upstreams.get(upstream.port) is upstream:
            del self.upstreams[upstream.port]
        if not exchange.sent and _retry(upstream, exchange, error) and not self.gone:
            self._send(exchange)
            return
        self._unanswered(exchange, error)

    def closed(self, upstream: Upstream) -> None:
        if self.upstreams.get(upstream.port) is upstream:
            del self.upstreams[upstream.port]

    def _unanswered(self, exchange: Exchange, error: BaseException) -> None:
        self.splitter.stats.of(exchange.digest, exchange.role).observe(exchange.milliseconds(), True)
        self.exchange = None
        if self.gone:
            return
        if exchange.sent:  # half an answer went out: the caller can only be told by closing
            self.client.close()
            self.gone = True
            return
        self.head = b""
        self.client.write(_unavailable(exchange, error, close=not exchange.request.keep_alive))
        if not exchange.request.keep_alive:
            self.client.close()
            self.gone = True
            return
        self._next()

    def _refuse(self, status: int, message: str, kind: str) -> None:
        self.refusal = _problem(status, message, kind)
        self.client.pause_reading()


class Shadows:
    """Copies of answered requests, sent to a shadow's candidate with at most `SHADOW_IN_FLIGHT` waiting (more are
    dropped and counted); each answer is compared with the live one and counted, never returned."""

    IDLE = 64

    def __init__(self, stats: Stats, watched: set[Upstream]) -> None:
        self.stats = stats
        self.watched = watched
        self.in_flight = 0
        self.idle: dict[int, list[Upstream]] = {}
        self.down_until: dict[int, float] = {}  # a candidate that refused a connection is left alone a second

    def send(self, split: Split, request: Request, expected: tuple[int, bytes]) -> None:
        if self.in_flight >= SHADOW_IN_FLIGHT:
            figures = self.stats.of(split.digest, "shadow")
            figures.shadow["dropped"] = figures.shadow.get("dropped", 0) + 1
            return
        if self.down_until and time.perf_counter() < self.down_until.get(split.port, 0.0):
            figures = self.stats.of(split.digest, "shadow")
            figures.shadow["error"] = figures.shadow.get("error", 0) + 1
            return
        self.in_flight += 1
        exchange = Exchange(request, split.port, split.release, split.digest, "shadow", body=bytearray())
        exchange.expected = expected
        self._send(exchange)

    def _send(self, exchange: Exchange) -> None:
        idle = self.idle.get(exchange.port)
        while idle:
            upstream = idle.pop()
            if upstream.open:
                upstream.send(exchange, SHADOW_TIMEOUT)
                return
        spawn(self._connect(exchange))

    async def _connect(self, exchange: Exchange) -> None:
        try:
            upstream = await connect(self, exchange.port, self.watched)
        except OSError as error:
            self.down_until[exchange.port] = time.perf_counter() + 1.0
            self.failed(None, exchange, error)
            return
        self.down_until.pop(exchange.port, None)
        upstream.send(exchange, SHADOW_TIMEOUT)

    def answer_bytes(self, upstream: Upstream, exchange: Exchange, data: bytes) -> None:
        return None  # a shadow's answer is never returned

    def answered(self, upstream: Upstream, exchange: Exchange) -> None:
        self.in_flight -= 1
        failed = exchange.status >= 500
        figures = self.stats.of(exchange.digest, "shadow")
        figures.observe(exchange.milliseconds(), failed)
        same = (exchange.status, bytes(exchange.body or b"")) == exchange.expected
        outcome = "error" if failed else ("same" if same else "differs")
        figures.shadow[outcome] = figures.shadow.get(outcome, 0) + 1
        idle = self.idle.setdefault(upstream.port, [])
        if upstream.open and len(idle) < self.IDLE:
            idle.append(upstream)
        else:
            upstream.close()

    def failed(self, upstream: Upstream | None, exchange: Exchange, error: BaseException) -> None:
        if upstream is not None and _retry(upstream, exchange, error):
            exchange.body = bytearray()
            self._send(exchange)
            return
        self.in_flight -= 1
        figures = self.stats.of(exchange.digest, "shadow")
        figures.observe(exchange.milliseconds(), True)
        figures.shadow["error"] = figures.shadow.get("error", 0) + 1

    def closed(self, upstream: Upstream) -> None:
        idle = self.idle.get(upstream.port, [])
        if upstream in idle:
            idle.remove(upstream)

    def close(self) -> None:
        for idle in self.idle.values():
            for upstream in idle:
                upstream.close()
        self.idle.clear()


class TooLarge(Exception):
    """A request body past `MAX_BODY`."""


class Closed(ConnectionError):
    """The server closed the connection before answering."""


_TASKS: set[asyncio.Task[None]] = set()  # tasks started by `spawn`, held until done


def spawn(work: Coroutine[object, object, None]) -> None:
    """Run `work` as a task of the running loop, held (asyncio keeps only a weak reference) until it is done."""
    task = asyncio.get_running_loop().create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_KNOWN = {status.value for status in HTTPStatus}


def _headers(release: int, content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", b"%d" % length), (RELEASE_HEADER, b"%d" % release)]


def _response(status: int, headers: list[tuple[bytes, bytes]], body: bytes, close: bool) -> bytes:
    reason = HTTPStatus(status).phrase.encode() if status in _KNOWN else b""
    lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
    connection = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\n%s%s\r\n%s" % (status, reason, lines, connection, body)


def _problem(status: int, message: str, kind: str) -> bytes:
    data = json.dumps({"error": message, "kind": kind}).encode()
    return _response(status, _headers(0, b"application/json", len(data))[:2], data, True)
