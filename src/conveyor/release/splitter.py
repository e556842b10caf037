"""A stage's requests split between its live release and a rollout's candidate, one HTTP request at a time.

While a route names a `Split`, the stage's forwarder reads each connection as HTTP/1.1 (h11) instead of piping
bytes, and sends every request on to the live server or the candidate (httpx, kept-alive connections):

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import httpx

from conveyor.release.routes import Route, Split

KEY_HEADER = b"x-conveyor-key"
RELEASE_HEADER = b"x-conveyor-release"
MAX_BODY = 16 * 1024 * 1024  # what one request may carry through the split (the servers have their own bounds)
SHADOW_IN_FLIGHT = 64
SHADOW_TIMEOUT = 10.0
BACKEND_TIMEOUT = 120.0
STATS_LINES = 3600  # an hour of one-second lines is kept
LATENCY_BOUNDS_MS = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
)  # fmt: skip
HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade",
    b"host", b"content-length",
}  # fmt: skip

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
                {"package": digest, "role": role, "requests": f.requests, "errors": f.errors, "latency": f.latency,
                 "latency_sum_ms": round(f.latency_sum_ms, 3), "shadow": f.shadow}
                for (digest, role), f in sorted(self.figures.items())
            ],
        }  # fmt: skip
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


class Splitter:
    """Serves split connections: reads each request with h11, answers it from the live or candidate server."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.clients: dict[int, httpx.AsyncClient] = {}
        self.shadows = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def client(self, port: int) -> httpx.AsyncClient:
        found = self.clients.get(port)
        if found is None:
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
            found = self.clients[port] = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=BACKEND_TIMEOUT
            )
        return found

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, current: RouteSource) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request = await self._read(connection, reader)
                if request is None:
                    break
                head, body = request
                route = await current()
                if route is None:
                    break
                answer = await self._answer(route, head, body)
                writer.write(connection.send(h11.Response(status_code=answer.status, headers=answer.headers)))
                writer.write(connection.send(h11.Data(data=answer.body)) or b"")
                writer.write(connection.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if connection.our_state is h11.MUST_CLOSE or connection.their_state is h11.MUST_CLOSE:
                    break
                connection.start_next_cycle()
        except h11.ProtocolError as bad:
            status = bad.error_status_hint
            message = str(bad) if status == 413 else f"the request is not valid HTTP/1.1 ({bad})"
            with contextlib.suppress(h11.ProtocolError, ConnectionError, OSError):
                if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    kind = "too_large" if status == 413 else "bad_request"
                    writer.write(_problem(connection, status, message, kind))
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    async def _read(self, connection: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
        """The next request and its whole body (None when the client closed); 413 past `MAX_BODY`."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(1 << 16)
                connection.receive_data(data)
                if not data and head is None:
                    return None
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _TooLarge()
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return head, bytes(body)

    async def _answer(self, route: Route, head: h11.Request, body: bytes) -> Answer:
        split = route.split
        key = next((value for name, value in head.headers if name == KEY_HEADER), None)
        to_candidate = split is not None and goes_to_candidate(split, key)
        port, release, digest = (
            (split.port, split.release, split.digest) if split is not None and to_candidate
            else (route.port, route.release, route.digest)
        )  # fmt: skip
        started = time.perf_counter()
        answer = await self._forward(port, release, head, body, BACKEND_TIMEOUT)
        role = "candidate" if to_candidate else "live"
        self.stats.of(digest, role).observe((time.perf_counter() - started) * 1000, answer.failed)
        if split is not None and split.mode == "shadow":
            self._shadow(split, head, body, answer)
        return answer

    async def _forward(self, port: int, release: int, head: h11.Request, body: bytes, timeout: float) -> Answer:
        headers = [(name, value) for name, value in head.headers if name not in HOP_BY_HOP]
        try:
            request = self.client(port).build_request(
                head.method.decode(), head.target.decode(), headers=headers, content=body, timeout=timeout
            )
            response = await self.client(port).send(request, stream=True)
            try:
                content = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            problem = f"release {release}'s server did not answer ({type(exc).__name__})"
            data = json.dumps({"error": problem, "kind": "unavailable"}).encode()
            return Answer(502, _headers(release, b"application/json", len(data)), data, True)
        kept = [(name, value) for name, value in response.headers.raw if name.lower() not in HOP_BY_HOP]
        kept += [(b"content-length", str(len(content)).encode()), (RELEASE_HEADER, str(release).encode())]
        return Answer(response.status_code, kept, content, response.status_code >= 500)

    def _shadow(self, split: Split, head: h11.Request, body: bytes, live: Answer) -> None:
        figures = self.stats.of(split.digest, "shadow")
        if self.shadows >= SHADOW_IN_FLIGHT:
            figures.shadow["dropped"] = figures.shadow.get("dropped", 0) + 1
            return
        self.shadows += 1
        task = asyncio.create_task(self._shadow_call(split, head, body, live, figures))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _shadow_call(self, split: Split, head: h11.Request, body: bytes, live: Answer, figures: Figures) -> None:
        started = time.perf_counter()
        try:
            answer = await self._forward(split.port, split.release, head, body, SHADOW_TIMEOUT)
        finally:
            self.shadows -= 1
        figures.observe((time.perf_counter() - started) * 1000, answer.failed)
        same = (answer.status, answer.body) == (live.status, live.body)
        outcome = "error" if answer.failed else ("same" if same else "differs")
        figures.shadow[outcome] = figures.shadow.get(outcome, 0) + 1

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()


class _TooLarge(h11.ProtocolError):
    def __init__(self) -> None:
        super().__init__(f"request body over {MAX_BODY} bytes", error_status_hint=413)


def _headers(release: int, content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type), (b"content-length", str(length).encode()),
        (RELEASE_HEADER, str(release).encode()),
    ]  # fmt: skip


def _problem(connection: h11.Connection, status: int, message: str, kind: str) -> bytes:
    data = json.dumps({"error": message, "kind": kind}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]  # fmt: skip
    return b"".join(
        part or b""
        for part in (
            connection.send(h11.Response(status_code=status, headers=headers)),
            connection.send(h11.Data(data=data)),
            connection.send(h11.EndOfMessage()),
        )
    )
