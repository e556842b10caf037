"""Spark servers on loopback for tests: a standalone cluster (a master and a worker) and a Spark Connect server.

They are started from the PySpark distribution installed in the venv (`bin/spark-class`, `bin/spark-submit`), on
free ports, with their logs and work folders under a temporary folder, and stopped (with their executors) at the
end. Use the session fixtures `spark_cluster` and `spark_connect` (import them into a conftest.py), or the
functions `start_cluster` / `start_connect_server` as context managers.

Run `python tests/spark_servers.py cluster|connect` to start one by hand; Ctrl-C stops it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

START_TIMEOUT = 90.0
PR_SET_PDEATHSIG = 1
JAVA_HINT = "Spark needs Java 17 or 21: scripts/install-system-deps.sh installs it"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def java_missing() -> str | None:
    """Why Spark cannot start here, or None."""
    if shutil.which("java") is None:
        return JAVA_HINT
    return None


def driver_env() -> dict[str, str]:
    """What a driver or client process on this machine needs to reach these servers and run Python tasks."""
    return {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


@dataclass
class SparkProcess:
    """One server JVM, started in its own process group so that its children stop with it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _start(name: str, command: list[str], folder: Path) -> SparkProcess:
    log = folder / f"{name}.log"
    env = {
        **os.environ,
        **driver_env(),
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(folder),
        "SPARK_DAEMON_MEMORY": "512m",
        "SPARK_NO_DAEMONIZE": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return SparkProcess(name, process, log)


def _die_with_parent() -> None:
    """In the child before exec: the server gets SIGTERM if the test process dies without stopping it (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait(what: str, ready: object, servers: list[SparkProcess], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            server.check_running()
        with contextlib.suppress(OSError, ValueError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.3)
    tails = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in servers)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{tails}")


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class StandaloneCluster:
    """A master and one worker on loopback; `url` is what `compute = "spark://..."` names."""

    url: str
    master_ui: str
    worker_dir: Path
    servers: list[SparkProcess] = field(default_factory=list)

    def state(self) -> dict:
        """The master's JSON status: workers, active and completed applications."""
        return _json(f"{self.master_ui}/json/")

    def executor_logs(self, app_id: str | None = None) -> dict[str, str]:
        """`APP/EXECUTOR` → the executor's stderr, as the worker kept it (tasks log what they run there)."""
        logs = {}
        for stderr in sorted(self.worker_dir.glob("app-*/*/stderr")):
            app, executor = stderr.parent.parent.name, stderr.parent.name
            if app_id is None or app == app_id:
                logs[f"{app}/{executor}"] = stderr.read_text(errors="replace")
        return logs

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def loopback(port: int, ui_port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)]


@contextlib.contextmanager
def start_cluster(folder: Path, cores: int = 2, memory: str = "1g") -> Iterator[StandaloneCluster]:
    """Start a master and a worker (`cores`, `memory` for executors) and stop them on exit."""
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui, worker_port, worker_ui = free_port(), free_port(), free_port(), free_port()
    worker_dir = folder / "work"
    worker_dir.mkdir(parents=True, exist_ok=True)
    url = f"spark://127.0.0.1:{port}"
    cluster = StandaloneCluster(url, f"http://127.0.0.1:{ui}", worker_dir)
    try:
        master = _start(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", *loopback(port, ui)],
            folder,
        )
        cluster.servers.append(master)
        _wait("Spark master", lambda: cluster.state().get("status") == "ALIVE", cluster.servers)
        worker = _start(
            "worker",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                *loopback(worker_port, worker_ui),
                *("--cores", str(cores), "--memory", memory, "--work-dir", str(worker_dir), url),
            ],
            folder,
        )
        cluster.servers.append(worker)
        _wait(
            "Spark worker",
            lambda: any(w.get("state") == "ALIVE" for w in cluster.state().get("workers", [])),
            cluster.servers,
        )
        yield cluster
    finally:
        cluster.stop()


@dataclass
class ConnectServer:
    """A Spark Connect server on loopback; `url` is what `compute = "sc://..."` names."""

    url: str
    server: SparkProcess

    def log(self) -> str:
        return self.server.log.read_text(errors="replace")

    def stop(self) -> None:
        self.server.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def start_connect_server(folder: Path, master: str = "local[2]") -> Iterator[ConnectServer]:
    """Start `SparkConnectServer` (the class `sbin/start-connect-server.sh` runs) in the foreground."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "Spark Connect server",
        "--master",
        master,
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.driver.memory=1g",
        "--conf",
        "spark.sql.shuffle.partitions=4",
    ]
    server = ConnectServer(f"sc://127.0.0.1:{port}", _start("connect", command, folder))
    try:
        _wait("Spark Connect server", lambda: _listening(port), [server.server])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone cluster for the whole test session; the test process gets the driver's environment."""
    if reason := java_missing():
        pytest.skip(reason)
    with _driver_environment(), start_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    """A Spark Connect server for the whole test session."""
    if reason := java_missing():
        pytest.skip(reason)
    with _driver_environment(), start_connect_server(tmp_path_factory.mktemp("spark-connect")) as server:
        yield server


@contextlib.contextmanager
def _driver_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in driver_env()}
    os.environ.update(driver_env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_term)  # stop the servers on `kill` too, not only on Ctrl-C
    kind = sys.argv[1] if len(sys.argv) > 1 else "cluster"
    home = Path(tempfile.mkdtemp(prefix=f"spark-{kind}-"))
    starter = start_cluster if kind == "cluster" else start_connect_server
    with starter(home) as running:
        print(f"{kind}: {running.url} (logs in {home}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
