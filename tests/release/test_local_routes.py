"""A `local://` stage serves only what the verified ledger names: an edited route file, a server that serves
another package, and a port another program holds are refused; two checkouts never share container names."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from release_support import FakeClock, Keys, build, free_port

from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release.admission import refusal
from conveyor.release.api import shut_down_stage
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases
from conveyor.release.routes import Ack, Route, ack_path, served_package
from conveyor.release.targets.base import DeployContext
from conveyor.release.targets.local import LocalTarget

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def stage(
    make_project: Callable[..., Path], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Releases, int]]:
    """Releases of a project with a `live` stage on local://PORT served by conveyor's server as a process."""
    monkeypatch.setenv("CONVEYOR_ENGINE", "process")
    monkeypatch.setenv("CONVEYOR_SERVE_WORKERS", "1")
    port = free_port()
    project = load_project(make_project(local_port=port))
    releases = Releases(project, Ledger.open(project, clock=clock))
    try:
        yield releases, port
    finally:
        shut_down_stage(project, "live")


def score(port: int) -> object:
    return httpx.post(f"http://127.0.0.1:{port}/score", json={}, timeout=10).json()


def rogue_server(package: Path, port: int) -> subprocess.Popen[bytes]:
    """conveyor's own server for another package (e.g. one whose gates failed), outside any release."""
    command = [sys.executable, "-m", "conveyor.serving", str(package), "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            served_package(port)
            return server
        except Exception:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the rogue server never became ready")


def through_port(port: int) -> None:
    """Open one connection through the stage's port: the forwarder reads its route file then."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def wait_ack(port: int, route_file: Path, serial: int) -> Ack:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        through_port(port)
        try:
            ack = Ack.read(ack_path(route_file))
        except (OSError, ValueError):
            ack = None
        if ack is not None and ack.serial >= serial:
            return ack
        time.sleep(0.1)
    raise AssertionError("the forwarder never answered the route")


def test_an_edited_route_file_is_refused_and_the_stage_goes_on_serving_its_release(
    stage: tuple[Releases, int], keys: Keys, tmp_path: Path
) -> None:
    releases, port = stage
    live = releases.create(build(releases, "approved-one"), "live", keys.carol)
    assert live.status == "live", live.error
    assert score(port) == {"label": "approved-one"}
    route_file = LocalTarget(f"local://{port}").route_file(releases.project.state_dir, "live")
    taken = Route.read(route_file)

    other = build(releases, "gate-failing", gates_ok=False)
    other_package = json.loads(other.read_text())["package"]["dir"]
    rogue_port = free_port()
    rogue = rogue_server(Path(other_package), rogue_port)
    try:
        rogue_digest = served_package(rogue_port)
        assert rogue_digest is not None and rogue_digest != taken.digest
        attempts = [
            Route(rogue_port, taken.release, taken.digest, taken.serial + 1),  # another port, same release
            Route(rogue_port, taken.release, rogue_digest, taken.serial + 2),  # and the other package's digest
            Route(rogue_port, 99, rogue_digest, taken.serial + 3),  # a release the ledger does not have
        ]
        reasons = []
        for attempt in attempts:
            attempt.write(route_file)
            ack = wait_ack(port, route_file, attempt.serial)
            assert ack.refused, attempt
            reasons.append(ack.refused)
            assert score(port) == {"label": "approved-one"}
        assert "not the server the ledger recorded" in reasons[0]
        assert "no release 99" in reasons[2]
    finally:
        rogue.kill()
        rogue.wait()


def test_the_route_check_names_each_reason(stage: tuple[Releases, int], keys: Keys) -> None:
    releases, port = stage
    live = releases.create(build(releases, "named"), "live", keys.carol)
    assert live.status == "live", live.error
    route = Route.read(LocalTarget(f"local://{port}").route_file(releases.project.state_dir, "live"))
    root = releases.project.root
    assert refusal(root, "live", route) is None
    assert "no release 5 of stage live" in (refusal(root, "live", Route(route.port, 5, route.digest, 9)) or "")
    assert "no release" in (refusal(root, "prod", route) or "")
    wrong = Route(route.port, route.release, "sha256:" + "0" * 64, 9)
    assert "but release" in (refusal(root, "live", wrong) or "")


def test_a_port_held_by_another_program_fails_the_release(
    stage: tuple[Releases, int], keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases, port = stage
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        with pytest.raises(CheckFailed, match=f"could not listen on 127.0.0.1:{port}"):
            releases.create(build(releases, "squatted"), "live", keys.carol)
    finally:
        squatter.close()
    (failed,) = releases.list()
    assert failed.status == "failed"
    assert not [e for e in releases.history("live")]


def test_a_server_that_serves_another_package_is_never_ready(stage: tuple[Releases, int]) -> None:
    releases, port = stage
    other = build(releases, "someone-else")
    package = Path(json.loads(other.read_text())["package"]["dir"])
    server_port = free_port()
    server = rogue_server(package, server_port)
    try:
        from conveyor.release.targets.local import Backend

        target = LocalTarget(f"local://{port}")
        with pytest.raises(CheckFailed, match=r"serves package sha256:.*, not sha256:0000"):
            target._wait_ready(Backend(1, server_port, "process", str(server.pid)), "sha256:" + "0" * 64)
    finally:
        server.kill()
        server.wait()


def test_two_checkouts_of_one_project_never_share_container_or_image_names(tmp_path: Path) -> None:
    from conveyor.release.shipment import Shipment

    shipment = Shipment("sha256:" + "1" * 64, None, None, None, "census", "1")
    names = set()
    for checkout in ("alice", "bob"):
        context = DeployContext("census", tmp_path / checkout / ".conveyor", "prod", 1, shipment)
        target = LocalTarget("local://8701")
        names.add((target.container_name(context), target.image_reference(context)))
    assert len(names) == 2
