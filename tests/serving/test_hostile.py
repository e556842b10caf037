"""Hostile and careless clients: oversized shapes, malformed fields, stalled connections, slow models, wrong
methods, a second server on a busy port. Every answer is a JSON problem with a 4xx (or a 5xx carrying only an
error id), the server keeps serving, and health endpoints keep answering."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import threading
import time

import httpx
import pytest
from serving_support import metric_value, wait_for_new_worker

from conveyor.serving.metrics import FLUSH_SECONDS

GOOD = {"age": 37, "hours-per-week": 40.0}
TIMEOUTS = ("--timeout", "1", "--header-timeout", "1", "--body-timeout", "1")


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (whatever its package label); 0 when absent."""
    return metric_value(text, name, **labels) or 0.0


def test_a_huge_v2_shape_is_refused_at_once(census_server) -> None:
    """82 bytes that once asked for two million empty records: 413 before any record is made."""
    body = b'{"inputs":[{"name":"age","shape":[2000000,0],"datatype":"INT64","data":[]}]}'
    started = time.perf_counter()
    response = httpx.post(f"{census_server.url}/v2/models/census/infer", content=body, timeout=30)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["kind"] == "too_many_records" and problem["field"] == "inputs[0].shape"
    wide = {"inputs": [{"name": "age", "shape": [1, 3000000000, 0], "datatype": "INT64", "data": []}]}
    response = httpx.post(f"{census_server.url}/v2/models/census/infer", json=wide)
    assert response.status_code == 400 and response.json()["field"] == "inputs[0].shape"
    many = {"dataframe_records": [{}] * 20001}
    response = httpx.post(f"{census_server.url}/invocations", json=many)
    assert response.status_code == 413 and response.json()["field"] == "dataframe_records"
    assert httpx.post(f"{census_server.url}/score", json=GOOD).status_code == 200


MALFORMED = [
    (
        "/v2/models/census/infer",
        {"inputs": [{"name": "age", "shape": [1], "data": [37]}], "outputs": [{"name": [1]}]},
        "outputs[0].name",
    ),
    ("/v2/models/census/infer", {"inputs": [{"name": "age", "shape": [1], "data": [37]}], "outputs": "all"}, "outputs"),
    ("/v2/models/census/infer", {"inputs": [{"name": "age", "shape": [True], "data": [37]}]}, "inputs[0].shape"),
    ("/v2/models/census/infer", {"inputs": [{"name": ["age"], "shape": [1], "data": [37]}]}, "inputs[0].name"),
    ("/v2/models/census/infer", {"inputs": [{"name": "age", "shape": [1], "data": 37}]}, "inputs[0].data"),
    ("/v2/models/census/infer", {"inputs": {"age": [37]}}, "inputs"),
    ("/v2/models/census/infer", [1, 2], "inputs"),
    ("/invocations", {"dataframe_split": {"columns": [[1]], "data": [[37]]}}, "dataframe_split.columns[0]"),
    ("/invocations", {"dataframe_split": {"columns": "age", "data": [[37]]}}, "dataframe_split.columns"),
    ("/invocations", {"dataframe_split": {"columns": ["age"], "data": [37]}}, "dataframe_split.data[0]"),
    ("/invocations", {"dataframe_split": [1]}, "dataframe_split"),
    ("/invocations", {"inputs": {"age": 37}}, "inputs.age"),
    ("/invocations", {"instances": 5}, "instances"),
    ("/invocations", [GOOD], None),
]


@pytest.mark.parametrize(("path", "body", "field"), MALFORMED, ids=[f"{p}:{f}" for p, _, f in MALFORMED])
def test_malformed_input_is_a_4xx_json_problem_naming_the_field(census_server, path, body, field) -> None:
    before = httpx.get(f"{census_server.url}/metrics").text
    response = httpx.post(f"{census_server.url}{path}", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    problem = response.json()
    assert problem["kind"] in ("bad_payload", "invalid_request") and problem["error"]
    assert problem.get("field") == field
    after = httpx.get(f"{census_server.url}/metrics").text
    counted = _metric(after, "conveyor_errors_total", kind=problem["kind"])
    assert counted == _metric(before, "conveyor_errors_total", kind=problem["kind"]) + 1


def test_a_500_carries_the_error_id_only(toy_server, toy_secret) -> None:
    response = httpx.post(f"{toy_server.url}/score", json={"x": 1, "boom": True})
    assert response.status_code == 500
    problem = response.json()
    assert set(problem) == {"error", "kind", "error_id"}
    assert problem["error_id"] in problem["error"]
    assert "RuntimeError" not in response.text and "password" not in response.text and "***" not in response.text
    assert f"error_id={problem['error_id']}" in toy_server.log() and "database login failed" in toy_server.log()


def _raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(data)
    return sock


def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    finally:
        sock.close()
    return b"".join(chunks), time.monotonic() - started


def test_stalled_headers_and_bodies_are_cut_off(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", *TIMEOUTS, env={"TOY_DB_PASSWORD": toy_secret})
    idle = _raw(server.port, b"")
    partial_headers = _raw(server.port, b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Le")
    partial_body = _raw(server.port, b'POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"x":')
    for sock, expected in ((idle, b""), (partial_headers, b" 408 "), (partial_body, b" 408 ")):
        answer, seconds = _read_until_closed(sock, 10)
        assert seconds < 4, f"connection held {seconds:.1f} s"
        assert expected in answer.split(b"\r\n", 1)[0] if expected else answer == b""
    assert httpx.post(f"{server.url}/score", json={"x": 2}).json()["y"] == 4
    metrics = httpx.get(f"{server.url}/metrics").text
    assert _metric(metrics, "conveyor_errors_total", kind="timeout") >= 1


def test_sigterm_does_not_wait_for_stalled_clients(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": toy_secret})
    stalled = [
        _raw(server.port, b'POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"x":'),
        _raw(server.port, b"POST /score HTTP/1.1\r\nHost: x\r\n"),
    ]
    time.sleep(0.3)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(25) == 0
    assert time.monotonic() - started < 5, server.log()
    for sock in stalled:
        sock.close()


def test_a_slow_run_gets_504_and_health_keeps_answering(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", *TIMEOUTS, env={"TOY_DB_PASSWORD": toy_secret})
    for _ in range(50):  # fast calls first: nothing may move scoring onto the event loop
        httpx.post(f"{server.url}/score", json={"x": 1})
    answers: dict[str, httpx.Response] = {}
    slow = threading.Thread(
        target=lambda: answers.update(slow=httpx.post(f"{server.url}/score", json={"x": 1, "spin": 3}, timeout=30))
    )
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    live = httpx.get(f"{server.url}/health/live", timeout=10)
    assert live.status_code == 200 and time.monotonic() - started < 0.5
    slow.join(30)
    response = answers["slow"]
    assert response.status_code == 504, response.text
    problem = response.json()
    assert problem["kind"] == "timeout" and re.fullmatch(r"[0-9a-f]{16}", problem["error_id"])
    assert f"error_id={problem['error_id']}" in server.log()
    assert httpx.post(f"{server.url}/score", json={"x": 3}).json()["y"] == 6


def test_a_hung_run_retires_its_worker(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", *TIMEOUTS, env={"TOY_DB_PASSWORD": toy_secret})
    first = httpx.get(f"{server.url}/health/live").json()["pid"]
    response = httpx.post(f"{server.url}/score", json={"x": 1, "sleep": 600}, timeout=30)
    assert response.status_code == 504
    wait_for_new_worker(server, first, "the worker stuck in run() was not replaced")
    assert httpx.post(f"{server.url}/score", json={"x": 4}).json()["y"] == 8
    assert "retiring" in server.log()


def test_the_router_follows_http(census_server) -> None:
    url = census_server.url
    wrong = httpx.get(f"{url}/score")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["kind"] == "method_not_allowed"
    assert httpx.delete(f"{url}/health/live").headers["allow"] == "GET, HEAD"
    head = httpx.head(f"{url}/health/ready")
    get = httpx.get(f"{url}/health/ready")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert httpx.head(f"{url}/metrics").status_code == 200
    assert httpx.head(f"{url}/nope").status_code == 404


def test_metrics_report_every_worker_and_never_go_backwards(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "2", env={"TOY_DB_PASSWORD": toy_secret})
    pids = set()
    for i in range(40):
        with httpx.Client() as client:  # a new connection each time, so both workers answer some
            response = client.post(f"{server.url}/score", json={"x": i})
            pids.add(response.json()["pid"])
    assert len(pids) == 2
    time.sleep(3 * FLUSH_SECONDS)  # each worker adds its figures to the shared files within FLUSH_SECONDS
    seen = []
    for _ in range(6):
        with httpx.Client() as client:
            text = client.get(f"{server.url}/metrics").text
        seen.append(_metric(text, "conveyor_requests_total", endpoint="/score", status="200"))
        assert _metric(text, "conveyor_workers") == 2
    assert seen == [40.0] * 6, seen
    import os

    os.kill(pids.pop(), signal.SIGKILL)
    time.sleep(1.0)
    text = httpx.get(f"{server.url}/metrics").text
    assert _metric(text, "conveyor_requests_total", endpoint="/score", status="200") >= 40


def test_a_second_server_on_a_busy_port_fails_unless_asked_to_share(toy_package, start_server, toy_secret) -> None:
    first = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": toy_secret})
    second = start_server(
        toy_package, "--workers", "1", "--port", str(first.port), env={"TOY_DB_PASSWORD": toy_secret}, ready=False
    )
    assert second.process.wait(60) == 2
    assert "port in use" in second.log() and str(first.port) in second.log()
    assert httpx.get(f"{first.url}/health/ready").status_code == 200
    shared = start_server(toy_package, "--workers", "1", "--reuse-port", env={"TOY_DB_PASSWORD": toy_secret})
    beside = start_server(
        toy_package,
        "--workers",
        "1",
        "--reuse-port",
        "--port",
        str(shared.port),
        env={"TOY_DB_PASSWORD": toy_secret},
        ready=False,
    )
    time.sleep(3)
    assert beside.process.poll() is None, beside.log()


def test_a_run_hung_on_the_event_loop_gets_its_worker_replaced(toy_package, start_server, toy_secret) -> None:
    """With --offload never, score.py runs on the event loop: a hung call stops everything in that worker, so the
    watchdog ends the worker and the supervisor starts a fresh one."""
    server = start_server(
        toy_package, "--workers", "1", "--offload", "never", *TIMEOUTS, env={"TOY_DB_PASSWORD": toy_secret}
    )
    first = httpx.get(f"{server.url}/health/live").json()["pid"]
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/score", json={"x": 1, "sleep": 600}, timeout=30)
    wait_for_new_worker(server, first, "the blocked worker was not replaced")
    assert "event loop has been blocked" in server.log()
    assert httpx.post(f"{server.url}/score", json={"x": 4}).json()["y"] == 8


def test_a_huge_header_is_431_without_buffering_it(census_server) -> None:
    """64 MiB of one header: refused once past the bound (64 KiB by default), not read whole and answered 200."""
    with socket.create_connection(("127.0.0.1", census_server.port), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-big: ")
        started = time.monotonic()
        answer = b""
        try:
            for _ in range(64 * 16):  # 64 MiB in 64 KiB pieces, stopping when the server answers
                sock.sendall(b"a" * 65536)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert time.monotonic() - started < 3
    assert httpx.get(f"{census_server.url}/health/live").status_code == 200
