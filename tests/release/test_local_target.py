"""local://PORT: the recorded image runs under podman beside the one serving, and takes the port once ready; a
release whose server never becomes ready fails and leaves the old one serving."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from release_support import FakeClock, Keys, alias_version, build, free_port

from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release.api import shut_down_stage
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases

pytestmark = [pytest.mark.services, pytest.mark.slow]


def served(port: int) -> tuple[int, str]:
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code
    return ready, httpx.get(f"http://127.0.0.1:{port}/release", timeout=5).text


def containers() -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "--format", "{{.Names}} {{.Labels}}"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.startswith("conveyor-census-")]


@pytest.fixture
def live_stage(make_project: Callable[..., Path], clock: FakeClock) -> Iterator[tuple[Releases, int]]:
    """Releases of a project with a `live` stage on local://PORT (no approvals); stopped afterwards."""
    port = free_port()
    project = load_project(make_project(local_port=port))
    releases = Releases(project, Ledger.open(project, clock=clock))
    try:
        yield releases, port
    finally:
        shut_down_stage(project, "live")


@pytest.mark.container
def test_local_release_runs_replaces_and_rolls_back(
    podman_storage: Path, live_stage: tuple[Releases, int], clock: FakeClock, keys: Keys, mlflow_registry: str
) -> None:
    releases, port = live_stage
    first = releases.create(build(releases, "local-one", model_version="1"), "live", keys.carol)
    assert first.status == "live", first.error
    assert first.deployment is not None and first.deployment.steps == ["load", "start", "switch", "alias"]
    assert served(port) == (200, "local-one")
    assert alias_version(mlflow_registry, "live") == "1"

    clock.advance(minutes=1)
    second = releases.create(build(releases, "local-two", model_version="2"), "live", keys.carol)
    assert served(port) == (200, "local-two")
    running = containers()
    assert len(running) == 1 and f"conveyor.release:{second.id}" in running[0]
    assert releases.show(first.id).status == "superseded"

    clock.advance(minutes=1)
    back = releases.rollback("live", key=keys.carol)
    assert (back.kind, back.source_release, back.status) == ("rollback", first.id, "live")
    assert served(port) == (200, "local-one")
    assert alias_version(mlflow_registry, "live") == "1"
    assert [e.release for e in releases.history("live")] == [first.id, second.id, back.id]


@pytest.mark.container
def test_a_failed_start_leaves_the_old_server_serving(
    podman_storage: Path,
    live_stage: tuple[Releases, int],
    clock: FakeClock,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases, port = live_stage
    first = releases.create(build(releases, "still-serving"), "live", keys.carol)
    assert first.status == "live", first.error
    monkeypatch.setenv("CONVEYOR_READY_TIMEOUT", "20")
    clock.advance(minutes=1)
    with pytest.raises(CheckFailed, match=r"was not ready .* goes on serving"):
        releases.create(build(releases, "never-ready", broken=True), "live", keys.carol)
    (failed,) = [v for v in releases.list() if v.id != first.id]
    assert failed.status == "failed" and "not ready" in (failed.error or "")
    assert served(port) == (200, "still-serving")
    running = containers()
    assert len(running) == 1 and f"conveyor.release:{first.id}" in running[0]
    assert releases.show(first.id).status == "live"
    assert [e.release for e in releases.history("live")] == [first.id]


def test_without_an_engine_the_package_is_served_by_conveyor_serve(
    live_stage: tuple[Releases, int], clock: FakeClock, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ENGINE", "process")
    monkeypatch.setenv("CONVEYOR_SERVE_WORKERS", "1")
    releases, port = live_stage
    first = releases.create(build(releases, "process-one"), "live", keys.carol)
    assert first.status == "live" and first.deployment is not None, first.error
    assert httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json() == {"label": "process-one"}
    clock.advance(minutes=1)
    second = releases.create(build(releases, "process-two"), "live", keys.carol)
    assert httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json() == {"label": "process-two"}
    old, new = (r.deployment.results["switch"].handle for r in (first, second) if r.deployment)
    assert old != new
    with pytest.raises(ProcessLookupError):
        os.kill(int(old), 0)
