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
import contextlib
import hashlib
import json
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

from conveyor.release.routes import Route, Split

if TYPE_CHECKING:
    from pathlib import Path

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
    b"host",
    b"content-length",
}

RouteSource = Callable[[], Awaitable[Route | None]]


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
        for index, bound in enumerate(LATENCY_BOUNDS_MS):
            if milliseconds <= bound:
                self.latency[index] += 1
                return
        self.latency[-1] += 1


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

    async def keep_writing(self) -> None:
        while True:
            await asyncio.sleep(1)
            with contextlib.suppress(OSError):
                self.write()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    failed: bool


@dataclass
class Message:
    """One HTTP message as a parser saw it: target (requests), status (responses), headers, body."""

    method: bytes = b""
    target: bytes = b""
    status: int = 0
    keep_alive: bool = True
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class Messages:
    """httptools' callbacks: the messages parsed so far, complete ones in `ready` (pipelined ones in order)."""

    def __init__(self) -> None:
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self.current = Message()
        self.ready: deque[Message] = deque()

    def on_message_begin(self) -> None:
        self.current = Message()

    def on_url(self, url: bytes) -> None:
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # noqa: S101 -- narrows for mypy: headers complete only while a parser runs
        if isinstance(parser, httptools.HttpRequestParser):
            self.current.method = parser.get_method()
        else:
            self.current.status = parser.get_status_code()
        self.current.keep_alive = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.current.body += body
        if len(self.current.body) > MAX_BODY:
            raise TooLarge(f"the request body is over {MAX_BODY} bytes")

    def on_message_complete(self) -> None:
        self.ready.append(self.current)


class TooLarge(Exception):
    """A request body past `MAX_BODY`."""


def request_parser() -> tuple[httptools.HttpRequestParser, Messages]:
    messages = Messages()
    parser = httptools.HttpRequestParser(messages)
    messages.parser = parser
    return parser, messages


def response_parser() -> tuple[httptools.HttpResponseParser, Messages]:
    messages = Messages()
    parser = httptools.HttpResponseParser(messages)
    messages.parser = parser
    return parser, messages


def _head_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


def response_bytes(answer: Answer, keep_alive: bool) -> bytes:
    reason = HTTPStatus(answer.status).phrase.encode() if answer.status in _KNOWN else b""
    connection = b"" if keep_alive else b"connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\n%s%s\r\n%s" % (
        answer.status,
        reason,
        _head_lines(answer.headers),
        connection,
        answer.body,
    )


class Splitter:
    """Serves split connections: reads each request, answers it from the live or the candidate server."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.backends: dict[int, Backend] = {}
        self.shadows = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def backend(self, port: int) -> Backend:
        found = self.backends.get(port)
        if found is None:
            found = self.backends[port] = Backend(port)
        return found

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, current: RouteSource) -> None:
        parser, messages = request_parser()
        try:
            while True:
                while not messages.ready:
                    data = await reader.read(1 << 16)
                    if not data:
                        return
                    parser.feed_data(data)
                request = messages.ready.popleft()
                route = await current()
                if route is None:
                    return
                answer = await self._answer(route, request)
                writer.write(response_bytes(answer, request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    return
        except TooLarge as large:
            writer.write(_problem(413, str(large), "too_large"))
        except httptools.HttpParserUpgrade:
            writer.write(_problem(400, "a split stage does not upgrade connections", "bad_request"))
        except httptools.HttpParserError as bad:
            writer.write(_problem(400, f"the request is not valid HTTP/1.1 ({bad})", "bad_request"))
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    async def _answer(self, route: Route, request: Message) -> Answer:
        split = route.split
        key = next((value for name, value in request.headers if name == KEY_HEADER), None)
        to_candidate = split is not None and goes_to_candidate(split, key)
        port, release, digest = (
            (split.port, split.release, split.digest)
            if split is not None and to_candidate
            else (route.port, route.release, route.digest)
        )
        started = time.perf_counter()
        answer = await self._forward(port, release, request, BACKEND_TIMEOUT)
        role = "candidate" if to_candidate else "live"
        self.stats.of(digest, role).observe((time.perf_counter() - started) * 1000, answer.failed)
        if split is not None and split.mode == "shadow":
            self._shadow(split, request, answer)
        return answer

    async def _forward(self, port: int, release: int, request: Message, timeout: float) -> Answer:
        try:
            async with asyncio.timeout(timeout):
                response = await self.backend(port).call(request)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            problem = f"release {release}'s server did not answer ({type(exc).__name__})"
            data = json.dumps({"error": problem, "kind": "unavailable"}).encode()
            return Answer(502, _headers(release, b"application/json", len(data)), data, True)
        kept = [(name, value) for name, value in response.headers if name not in HOP_BY_HOP]
        kept += [(b"content-length", b"%d" % len(response.body)), (RELEASE_HEADER, b"%d" % release)]
        return Answer(response.status, kept, bytes(response.body), response.status >= 500)

    def _shadow(self, split: Split, request: Message, live: Answer) -> None:
        figures = self.stats.of(split.digest, "shadow")
        if self.shadows >= SHADOW_IN_FLIGHT:
            figures.shadow["dropped"] = figures.shadow.get("dropped", 0) + 1
            return
        self.shadows += 1
        task = asyncio.create_task(self._shadow_call(split, request, live, figures))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _shadow_call(self, split: Split, request: Message, live: Answer, figures: Figures) -> None:
        started = time.perf_counter()
        try:
            answer = await self._forward(split.port, split.release, request, SHADOW_TIMEOUT)
        finally:
            self.shadows -= 1
        figures.observe((time.perf_counter() - started) * 1000, answer.failed)
        same = (answer.status, answer.body) == (live.status, live.body)
        outcome = "error" if answer.failed else ("same" if same else "differs")
        figures.shadow[outcome] = figures.shadow.get(outcome, 0) + 1

    async def close(self) -> None:
        for backend in self.backends.values():
            backend.close()


class Backend:
    """Kept-alive HTTP/1.1 connections to one server on 127.0.0.1; a request on an idle connection that the
    server closed meanwhile is sent again once, on a new one."""

    IDLE = 128

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = b"127.0.0.1:%d" % port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def call(self, request: Message) -> Message:
        reused = bool(self.idle)
        try:
            return await self._call(request, fresh=False)
        except (ConnectionError, Closed):
            if not reused:
                raise
            return await self._call(request, fresh=True)

    async def _call(self, request: Message, *, fresh: bool) -> Message:
        if self.idle and not fresh:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        headers = [(n, v) for n, v in request.headers if n not in HOP_BY_HOP]
        headers += [(b"host", self.host), (b"content-length", b"%d" % len(request.body))]
        parser, messages = response_parser()
        try:
            writer.write(
                b"%s %s HTTP/1.1\r\n%s\r\n%s" % (request.method, request.target, _head_lines(headers), request.body)
            )
            while not messages.ready:
                data = await reader.read(1 << 16)
                if not data:
                    raise Closed()
                parser.feed_data(data)
        except BaseException:
            writer.close()
            raise
        response = messages.ready.popleft()
        if response.keep_alive and len(self.idle) < self.IDLE:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return response

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class Closed(ConnectionError):
    """The server closed the connection before answering."""


_KNOWN = {status.value for status in HTTPStatus}


def _headers(release: int, content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", b"%d" % length), (RELEASE_HEADER, b"%d" % release)]


def _problem(status: int, message: str, kind: str) -> bytes:
    data = json.dumps({"error": message, "kind": kind}).encode()
    return response_bytes(Answer(status, _headers(0, b"application/json", len(data))[:2], data, True), False)
