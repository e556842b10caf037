"""A registered model as a servable package folder: `conveyor serve models:/NAME@ALIAS` starts from this."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conveyor.config import load_project
from conveyor.registry import ModelRegistry, materialize

pytestmark = pytest.mark.slow


def test_materialize_follows_the_alias_and_serves(trained_project, tmp_path, monkeypatch):
    from conveyor.compute import train
    from conveyor.serving.sources import resolve

    env = load_project(trained_project).environment("dev")
    registry = ModelRegistry(env)
    registry.set_alias("worst_regression", "prod", "1")
    first = materialize("models:/worst_regression@prod", env, tmp_path)
    assert (first / "score.py").is_file() and (first / "inference" / "model.py").is_file()
    assert (first / "model" / "weights.json").is_file()
    assert json.loads((first / "registered-model.json").read_text())["model"]["version"] == "1"
    assert materialize("models:/worst_regression/1", env, tmp_path) == first  # reused, not downloaded again

    newer = train(env, out=lambda _: None, err=lambda _: None).registered[0]["version"]
    registry.set_alias("worst_regression", "prod", newer)
    moved = materialize("models:/worst_regression@prod", env, tmp_path)
    assert moved != first and json.loads((moved / "registered-model.json").read_text())["model"]["version"] == newer

    monkeypatch.chdir(trained_project)
    source = resolve("models:/worst_regression@prod", "dev", cache_dir=tmp_path)
    assert source.package_dir == moved
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.serving", str(source.package_dir), "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        scored = httpx.post(f"http://127.0.0.1:{port}/score", content=b'{"age": 37, "hours-per-week": 40}')
        described = httpx.get(f"http://127.0.0.1:{port}/v2/models/worst_regression").json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert scored.status_code == 200 and isinstance(scored.json()["estimated_wages"], float)
    assert described["name"] == "worst_regression" and described["versions"] == [newer]
