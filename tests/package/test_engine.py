"""The engine wrapper: machine conditions handled without the user setting anything, and laptops left alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.package import engine as engine_module
from conveyor.package.engine import EngineError, find_engine, podman_configuration


def test_no_rlimit_capability_gets_a_containers_conf(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVEYOR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setattr(engine_module, "lacks_rlimit_capability", lambda: True)
    monkeypatch.setattr(engine_module, "_system_sets_ulimits", lambda: False)
    env, _ = podman_configuration()
    conf = env["CONTAINERS_CONF"]
    assert "default_ulimits = []" in Path(conf).read_text()


def test_a_users_containers_conf_and_ordinary_machines_are_left_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(engine_module, "lacks_rlimit_capability", lambda: True)
    monkeypatch.setattr(engine_module, "_system_sets_ulimits", lambda: False)
    monkeypatch.setenv("CONTAINERS_CONF", str(tmp_path / "mine.conf"))
    assert "CONTAINERS_CONF" not in podman_configuration()[0]
    monkeypatch.delenv("CONTAINERS_CONF")
    monkeypatch.setattr(engine_module, "lacks_rlimit_capability", lambda: False)
    monkeypatch.setattr(engine_module, "cgroups_hybrid", lambda: False)
    assert podman_configuration() == ({}, [])


def test_unknown_and_missing_engines_are_named(monkeypatch, tmp_path):
    with pytest.raises(EngineError, match="unknown container engine"):
        find_engine("rkt")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="buildah is not installed"):
        find_engine("buildah")


@pytest.mark.container
def test_podman_runs_a_container_here(image_build):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed: scripts/install-container-engine.sh installs it")
    podman = find_engine("podman")
    result = podman.run("run", "--rm", "--entrypoint", "python", image_build.image.reference, "-c", "print(6 * 7)")
    assert result.stdout.strip() == "42"
