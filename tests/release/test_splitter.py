"""The stage forwarder's split path as a caller meets it on a raw socket: requests pipelined, cut across reads,
chunked, too large or not HTTP at all; a server that is down or closes its idle connections.

The forwarder runs in a thread on its own event loop, in front of two small real HTTP/1.1 servers (the standard
library's), with a canary route written by hand and every route admitted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from release_support import free_port

from conveyor.release import forwarder
from conveyor.release.routes import Route, Split, ack_path, stats_path
from conveyor.release.splitter import MAX_BODY


class Echo(BaseHTTPRequestHandler):
    """Answers each POST with its own port, the body's length and the request's headers; closes its connection
    after answering when the path is /close (without saying so: an idle timeout as the forwarder meets it)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        document = {
            "port": self.server.server_address[1],
            "length": len(body),
            "headers": {name.lower(): value for name, value in self.headers.items()},
        }
        data = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.path == "/close":
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return None


def _server() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Stage:
    def __init__(self, port: int, live: int, candidate: int) -> None:
        self.port, self.live, self.candidate = port, live, candidate

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    live, candidate = _server(), _server()
    down = free_port()  # nothing listens: a candidate whose server is gone
    route_file = tmp_path / "live.route"
    split = Split(candidate.server_address[1], 2, "sha256:candidate", "canary", 50)
    Route(live.server_address[1], 1, "sha256:live", 1, split).write(route_file)
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(_serve(port, route_file, stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ack_path(route_file).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    made = Stage(port, live.server_address[1], candidate.server_address[1])
    made.down = down  # type: ignore[attr-defined]
    made.route_file = route_file  # type: ignore[attr-defined]
    yield made
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    live.shutdown()
    candidate.shutdown()


async def _serve(port: int, route_file: Path, stop: asyncio.Event) -> None:
    fw = forwarder.Forwarder(route_file, lambda route: None)
    server = await asyncio.get_running_loop().create_server(fw.connection, "127.0.0.1", port)
    await fw.current()
    watching = asyncio.create_task(fw.splitter.keep_watching())
    async with server:
        await stop.wait()
    watching.cancel()
    await fw.splitter.close()


def _reroute(stage: Stage, split: Split) -> None:
    """Route the stage anew with `split` (serial 2) and wait until the forwarder took it."""
    Route(stage.live, 1, "sha256:live", 2, split).write(stage.route_file)  # type: ignore[attr-defined]
    with stage.connect():  # a new connection: the forwarder reads the changed route
        pass
    deadline = time.monotonic() + 10
    while json.loads(ack_path(stage.route_file).read_text())["serial"] < 2:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _request(path: str = "/score", body: bytes = b"{}", headers: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nhost: stage\r\ncontent-type: application/json\r\n{headers}"
    return head.encode() + b"content-length: %d\r\n\r\n%s" % (len(body), body)


def _answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read `count` answers (each with a content-length) from `sock`."""
    buffer = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                raise AssertionError(f"the connection closed after {len(answers)} answers")
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(buffer) < length:
            buffer += sock.recv(65536)
        answers.append((status, headers, buffer[:length]))
        buffer = buffer[length:]
    return answers


def test_pipelined_requests_are_answered_in_order_each_with_its_release(stage: Stage) -> None:
    with stage.connect() as sock:
        sock.sendall(b"".join(_request(headers=f"x-conveyor-key: caller-{n}\r\n") for n in range(40)))
        answers = _answers(sock, 40)
    assert all(status == 200 for status, _, _ in answers)
    ports = {json.loads(body)["port"] for _, _, body in answers}
    assert ports == {stage.live, stage.candidate}  # a 50% canary: both answered some
    for _, headers, body in answers:
        release = {stage.live: "1", stage.candidate: "2"}[json.loads(body)["port"]]
        assert headers["x-conveyor-release"] == release


def test_a_request_cut_across_reads_and_a_chunked_one_arrive_whole(stage: Stage) -> None:
    body = json.dumps({"x": "y" * 5000}).encode()
    with stage.connect() as sock:
        request = _request(body=body)
        for start in range(0, len(request), 700):
            sock.sendall(request[start : start + 700])
            time.sleep(0.005)
        chunked = b"POST /score HTTP/1.1\r\nhost: stage\r\ntransfer-encoding: chunked\r\n\r\n"
        chunked += b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
        sock.sendall(chunked)
        answers = _answers(sock, 2)
    assert [json.loads(b).get("length") for _, _, b in answers] == [len(body), len(body)], answers
    # what was read whole goes on as it came; what was rebuilt goes with a length and without the chunking
    forwarded = json.loads(answers[1][2])["headers"]
    assert forwarded["content-length"] == str(len(body)) and "transfer-encoding" not in forwarded
    assert forwarded["host"] == "stage"


def test_what_is_not_http_or_too_large_is_refused_with_a_problem(stage: Stage) -> None:
    with stage.connect() as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        ((status, headers, body),) = _answers(sock, 1)
        assert status == 400 and json.loads(body)["kind"] == "bad_request"
        assert headers["connection"] == "close" and sock.recv(1) == b""
    with stage.connect() as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nhost: stage\r\ncontent-length: %d\r\n\r\n" % (MAX_BODY + 10))
        sock.sendall(b"x" * (MAX_BODY + 10))
        ((status, _, body),) = _answers(sock, 1)
        assert status == 413 and json.loads(body)["kind"] == "too_large"


def test_a_server_down_answers_502_and_the_connection_goes_on(stage: Stage) -> None:
    _reroute(stage, Split(stage.down, 2, "sha256:candidate", "canary", 100))  # type: ignore[attr-defined]
    with stage.connect() as sock:
        sock.sendall(_request())
        ((status, headers, body),) = _answers(sock, 1)
        assert status == 502 and json.loads(body)["kind"] == "unavailable"
        assert headers["x-conveyor-release"] == "2"
        sock.sendall(_request())
        assert _answers(sock, 1)[0][0] == 502  # still the same connection


def test_a_server_that_closes_after_answering_is_reached_again_on_a_new_connection(stage: Stage) -> None:
    with stage.connect() as sock:
        for _ in range(10):
            sock.sendall(_request(path="/close"))
            ((status, _, _),) = _answers(sock, 1)
            assert status == 200


def test_a_caller_that_says_close_is_answered_then_closed(stage: Stage) -> None:
    with stage.connect() as sock:
        sock.sendall(_request(headers="connection: close\r\n"))
        ((status, _, _),) = _answers(sock, 1)
        assert status == 200
        assert sock.recv(1) == b""


def test_a_shadow_whose_server_is_down_costs_the_caller_nothing_and_each_copy_is_counted(stage: Stage) -> None:
    _reroute(stage, Split(stage.down, 2, "sha256:candidate", "shadow", 0))  # type: ignore[attr-defined]
    with stage.connect() as sock:
        for _ in range(50):
            sock.sendall(_request())
            ((status, headers, body),) = _answers(sock, 1)
            assert status == 200 and json.loads(body)["port"] == stage.live and headers["x-conveyor-release"] == "1"
    stats = stats_path(stage.route_file)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:
        lines = stats.read_text().splitlines() if stats.exists() else ["{}"]
        figures = json.loads(lines[-1]).get("figures", [])
        shadow = next((f["shadow"] for f in figures if f["role"] == "shadow"), {})
        if shadow.get("error", 0) >= 50 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert shadow == {"error": 50}, shadow
