"""Fixtures: a census package fitted here, a small toy package for failure cases, real servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SECRET = "s3cr3t-hunter2-value"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "schemathesis: generated requests against the server's OpenAPI document")
    config.addinivalue_line("markers", "load: a minute of load at 256 connections (select with -m load)")


TOY_SCORE = """
import json, os, time
from conveyor.secrets.env import EnvSecretStore

EXAMPLE_REQUEST = {"x": 1.5}


class RequestError(ValueError):
    status_code = 422

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


LEAKED = []


def init():
    global password
    if os.environ.get("TOY_FAIL_INIT"):
        raise RuntimeError("cannot open the model: the disk said no")
    password = EnvSecretStore("TOY_").get("db-password")


def run(raw):
    request = json.loads(raw)
    if "sleep" in request:
        time.sleep(request["sleep"])
    if "spin" in request:  # busy, holding the GIL between switches
        end = time.monotonic() + request["spin"]
        while time.monotonic() < end:
            pass
    if "exit" in request:  # a score.py that ends its own process
        os._exit(request["exit"])
    if "leak_mb" in request:  # a score.py that keeps what it should not
        LEAKED.append(bytearray(request["leak_mb"] * 1024 * 1024))
    if request.get("boom"):
        raise RuntimeError(f"database login failed with password {password}")
    if not isinstance(request.get("x"), (int, float)):
        raise RequestError("field 'x' must be a number", "x")
    return {"y": request["x"] * 2, "pid": os.getpid()}


def run_batch(raws):
    time.sleep(float(os.environ.get("TOY_BATCH_DELAY", "0")))
    return [run(raw) for raw in raws]
"""


@pytest.fixture(scope="session")
def census_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The census example as `conveyor build` lays it out, with a model fitted on 600 generated rows."""
    from conveyor.examples.census_package import write_census_package

    return write_census_package(tmp_path_factory.mktemp("census"), rows=600, seed=3, version="3")


@pytest.fixture(scope="session")
def toy_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp("toy") / "package"
    package.mkdir()
    (package / "score.py").write_text(TOY_SCORE)
    (package / "manifest.json").write_text(json.dumps({"model": {"name": "toy", "version": "1"}}))
    return package


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m conveyor.serving PKG ...` on a free port, its log in a file."""

    def __init__(self, package: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "conveyor.serving", str(package), "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command,
            stdout=open(log_path, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    started: list[ServerProcess] = []

    def start(package: Path, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> ServerProcess:
        server = ServerProcess(package, tmp_path / f"server{len(started)}.log", *args, env=env)
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def census_server(census_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One worker, batches allowed to wait up to a whole second (a lone request must not)."""
    log = tmp_path_factory.mktemp("logs") / "census.log"
    server = ServerProcess(census_package, log, "--workers", "1", "--max-wait-ms", "1000", "--max-body-bytes", "65536")
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def toy_server(toy_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Toy model whose run_batch takes 0.3 s (so concurrent requests queue into one batch) and knows a secret."""
    log = tmp_path_factory.mktemp("logs") / "toy.log"
    env = {"TOY_DB_PASSWORD": SECRET, "TOY_BATCH_DELAY": "0.3"}
    server = ServerProcess(toy_package, log, "--workers", "1", env=env)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def toy_secret() -> str:
    """The value the toy model reads from its secret store (it must never be shown)."""
    return SECRET
