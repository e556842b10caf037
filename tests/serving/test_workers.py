"""Worker processes: a killed worker is replaced; SIGTERM finishes in-flight requests first."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time

import httpx
from serving_support import wait_for_new_worker


def test_killed_worker_is_replaced(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": toy_secret})
    first = httpx.get(f"{server.url}/health/live").json()["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for_new_worker(server, first, "no new worker")
    assert httpx.post(f"{server.url}/score", json={"x": 3}).json()["y"] == 6
    assert server.process.poll() is None


def test_two_workers_share_the_port(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "2", env={"TOY_DB_PASSWORD": toy_secret})
    deadline = time.monotonic() + 30
    pids: set[int] = set()
    while len(pids) < 2 and time.monotonic() < deadline:
        with httpx.Client() as client:  # a new connection each round, so either worker may accept it
            response = client.get(f"{server.url}/health/ready")
            if response.status_code == 200:
                pids.add(response.json()["pid"])
    assert len(pids) == 2


def test_sigterm_finishes_the_in_flight_request(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": toy_secret})
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{server.url}/score", json={"x": 5, "sleep": 1.5}, timeout=30))
    )
    slow.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    slow.join(30)
    assert answers and answers[0].status_code == 200 and answers[0].json()["y"] == 10
    assert server.process.wait(30) == 0
    assert time.monotonic() - started < 15
    assert "server stopped" in server.log()


def test_a_score_py_that_exits_with_the_init_failed_code_is_only_a_dead_worker(
    toy_package, start_server, toy_secret
) -> None:
    """os._exit(3) in run() once stopped the whole server (3 was the code for init() failing)."""
    server = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": toy_secret})
    first = httpx.get(f"{server.url}/health/live").json()["pid"]
    with contextlib.suppress(httpx.TransportError):
        httpx.post(f"{server.url}/score", json={"exit": 3}, timeout=10)
    wait_for_new_worker(server, first, "the server did not replace the worker")
    assert httpx.post(f"{server.url}/score", json={"x": 3}).json()["y"] == 6
    assert server.process.poll() is None


def test_init_failing_still_stops_the_server(toy_package, start_server) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_FAIL_INIT": "1"}, ready=False)
    assert server.process.wait(60) != 0
    assert "init()" in server.log() and "failed" in server.log()


def test_max_requests_recycles_a_worker(toy_package, start_server, toy_secret) -> None:
    server = start_server(toy_package, "--workers", "1", "--max-requests", "20", env={"TOY_DB_PASSWORD": toy_secret})
    pids = set()
    for _ in range(45):
        pids.add(httpx.post(f"{server.url}/score", json={"x": 1}, timeout=10).json()["pid"])
    assert len(pids) >= 2, server.log()
    assert "recycl" in server.log()


def test_a_worker_over_its_memory_cap_is_replaced(toy_package, start_server, toy_secret) -> None:
    server = start_server(
        toy_package, "--workers", "1", "--max-worker-memory", "300", env={"TOY_DB_PASSWORD": toy_secret}
    )
    first = httpx.get(f"{server.url}/health/live").json()["pid"]
    for _ in range(8):  # 8 × 50 MiB kept by a leaking score.py
        response = httpx.post(f"{server.url}/score", json={"leak_mb": 50, "x": 1}, timeout=20)
        assert response.status_code == 200  # in-flight requests finish
    wait_for_new_worker(server, first, "the leaking worker was not replaced")
    assert "memory" in server.log()


LEAKY_SCORE = """
import os, sys

def init():
    pass

def run(raw):
    token = open(os.environ["LEAK_FILE"]).read().strip()  # a stage token the server itself never read
    print("calling the feature store with", token)
    sys.stderr.write(f"token={token}\\n")
    raise RuntimeError(f"feature store refused {token}")
"""


def test_with_env_every_secret_of_its_store_is_masked_in_the_log(census_project, tmp_path) -> None:
    """`conveyor serve PKG --env stage`: a token score.py prints or raises with is masked, though unread."""
    import subprocess
    import sys
    from pathlib import Path

    from conveyor.config import load_project
    from conveyor.secrets.file import FileSecretStore

    token = "stg-Zq8vT3kLm9pW7sNf4Hd1yBc6"
    store = load_project(census_project).environment("stage").secrets
    before = Path(store.path).read_bytes()
    FileSecretStore(store.path, store.url).set("feature-store-token", token)
    (tmp_path / "token").write_text(token)
    package = tmp_path / "package"
    package.mkdir()
    (package / "score.py").write_text(LEAKY_SCORE)
    (package / "manifest.json").write_text('{"model": {"name": "leaky", "version": "1"}}')
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    cli = Path(sys.executable).with_name("conveyor")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(cli), "serve", str(package), "--env", "stage", "--port", port, "--workers", "1"],
            cwd=census_project,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LEAK_FILE": str(tmp_path / "token")},
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/score", json={"x": 1}, timeout=10)
        assert answer.status_code == 500 and token not in answer.text
        time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        Path(store.path).write_bytes(before)  # the session's project as it was
    text = log.read_text()
    assert "calling the feature store with" in text and "token=" in text, text
    assert token not in text, text
