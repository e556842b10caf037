"""A census project trained once per session, and one image build shared by the container tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.cli.main import main

INSTALL = "podman is not installed: scripts/install-container-engine.sh installs it"


def make_project(base: Path, name: str) -> Path:
    root = base / name
    code = main(
        ["init", str(root), "--secrets-dir", str(base / "secrets"), "--lakes-dir", str(base / "lakes"), "--rows", "300"]
    )
    assert code == 0
    return root


@pytest.fixture(scope="session")
def census(tmp_path_factory) -> Path:
    """A project with one model version trained in dev."""
    base = tmp_path_factory.mktemp("pkg")
    root = make_project(base, "census")
    assert main(["train", "--env", "dev", "--project", str(root)]) == 0
    return root


@pytest.fixture(scope="session")
def image_build(census):
    """The project's build with an image (podman), made once."""
    if not shutil.which("podman"):
        pytest.skip(INSTALL)
    from conveyor.config import load_project
    from conveyor.package import build
    from conveyor.package.engine import find_engine

    project = load_project(census)
    record = build(project, project.environment("dev"), model_spec="worst_regression/1", engine="podman")
    yield record
    find_engine("podman").remove_image(record.image["reference"])
