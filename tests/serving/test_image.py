"""The serving image: the model's requirements and the server's, nothing of the command line and no pip; served
through `python -m conveyor.serving IMAGE` (the engine runs it)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
from serving_support import metric_value

ABSENT = ("pip", "setuptools", "typer", "rich", "pydantic", "click_repl", "mlflow", "pandas")


@pytest.mark.container
def test_the_image_holds_only_what_serving_needs(image_build) -> None:
    from conveyor.package.engine import find_engine

    engine = find_engine("podman")
    reference = image_build.image.reference
    program = (
        "import importlib.util as u, json, shutil, sys\n"
        f"print(json.dumps({{'present': [m for m in {ABSENT!r} if u.find_spec(m)], 'shell': shutil.which('sh'),"
        " 'prefix': sys.prefix}))"
    )
    result = engine.run("run", "--rm", "--network", "none", "--entrypoint", "python", reference, "-c", program)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["present"] == [] and found["prefix"] == "/opt/conveyor"
    labels = json.loads(engine.run("image", "inspect", "--format", "{{json .Labels}}", reference).stdout)
    if labels["org.opencontainers.image.base.name"].startswith("localhost/conveyor-python:"):
        assert found["shell"] is None, "the runtime base made from Debian packages has no shell"


@pytest.mark.container
def test_python_m_serving_serves_an_image(image_build, start_server) -> None:
    reference = image_build.image.reference
    server = start_server(reference, "--workers", "1", "--timeout", "30", ready=False)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.log()
            try:
                if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"the image did not become ready:\n{server.log()}")
        response = httpx.post(f"{server.url}/score", json={"age": 37, "hours-per-week": 40})
        assert response.status_code == 200 and response.json()["estimated_wages"] > 0
        metrics = httpx.get(f"{server.url}/metrics").text
        assert metric_value(metrics, "conveyor_requests_total", endpoint="/score", status="200") == 1.0
        package = image_build.digest
        assert metric_value(metrics, "conveyor_drift_available", package=package) == 1.0, "the build's profile"
        assert metric_value(metrics, "conveyor_drift_window_records", package=package) == 1.0
        assert metric_value(metrics, "conveyor_drift_ks_pvalue", package=package, feature="age") is not None
    finally:
        code = server.stop(60)
    assert code in (0, 130, 143), server.log()


def test_python_m_serving_names_a_missing_engine_or_image(monkeypatch, tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "conveyor.serving", "localhost/no-such-image:1", "--port", str(port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={"PATH": "/nonexistent"})
    assert result.returncode == 2 and "container engine" in result.stderr and "Traceback" not in result.stderr
