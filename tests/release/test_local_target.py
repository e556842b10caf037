"""local://PORT: the tested image runs under podman until /health/ready answers; the next release replaces it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from release_support import FakeClock, alias_version, build, free_port

from conveyor.config import load_project
from conveyor.release import Ledger, Releases

pytestmark = [pytest.mark.container, pytest.mark.services, pytest.mark.slow]


def served(port: int) -> tuple[int, str]:
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code
    return ready, httpx.get(f"http://127.0.0.1:{port}/release", timeout=5).text


def containers() -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "--format", "{{.Names}} {{.Labels}}"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.startswith("conveyor-census-")]


def test_local_release_runs_replaces_and_rolls_back(
    podman_storage: Path, make_project: Callable[..., Path], clock: FakeClock, mlflow_registry: str
) -> None:
    port = free_port()
    project = load_project(make_project(local_port=port))
    desk = Releases(project, Ledger.open(project, clock=clock))

    first = desk.create(build(desk, "local-one", model_version="1"), "live", actor="carol")
    assert first.status == "live"
    assert first.deployment is not None and first.deployment["steps"] == ["load", "run", "ready", "alias"]
    assert served(port) == (200, "local-one")
    assert alias_version(mlflow_registry, "live") == "1"

    clock.advance(minutes=1)
    second = desk.create(build(desk, "local-two", model_version="2"), "live", actor="carol")
    assert served(port) == (200, "local-two")
    running = containers()
    assert len(running) == 1 and f"conveyor.release:{second.id}" in running[0]
    assert desk.show(first.id).status == "superseded"

    clock.advance(minutes=1)
    back = desk.rollback("live", actor="carol")
    assert (back.kind, back.source_release) == ("rollback", first.id)
    assert served(port) == (200, "local-one")
    assert alias_version(mlflow_registry, "live") == "1"
    assert [e.release for e in desk.history("live")] == [first.id, second.id, back.id]


def test_local_release_refuses_an_image_whose_digest_is_not_the_tested_one(
    podman_storage: Path, make_project: Callable[..., Path], clock: FakeClock
) -> None:
    from conveyor.errors import CheckFailed

    project = load_project(make_project(local_port=free_port()))
    desk = Releases(project, Ledger.open(project, clock=clock))
    path = build(desk, "local-wrong")
    record = json.loads(path.read_text())
    record["image"]["digest"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(record))
    with pytest.raises(CheckFailed, match="the build recorded sha256:0000"):
        desk.create(path, "live", actor="carol")


def test_without_an_engine_the_package_is_served_by_conveyor_serve(
    make_project: Callable[..., Path], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.release.targets import _stop_process

    monkeypatch.setenv("CONVEYOR_ENGINE", "process")
    monkeypatch.setenv("CONVEYOR_SERVE_WORKERS", "1")
    port = free_port()
    project = load_project(make_project(local_port=port))
    desk = Releases(project, Ledger.open(project, clock=clock))
    pid_file = project.state_dir / "release" / "local" / "live.pid"
    try:
        first = desk.create(build(desk, "process-one"), "live", actor="carol")
        assert first.status == "live" and first.deployment is not None, first.error
        assert httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json() == {"label": "process-one"}
        clock.advance(minutes=1)
        second = desk.create(build(desk, "process-two"), "live", actor="carol")
        assert httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json() == {"label": "process-two"}
        assert second.deployment is not None and second.deployment["handle"] != first.deployment["handle"]
        with pytest.raises(ProcessLookupError):
            os.kill(int(first.deployment["handle"]), 0)
    finally:
        if pid_file.is_file():
            _stop_process(int(pid_file.read_text().split()[0]))
