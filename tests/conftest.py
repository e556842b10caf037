"""Fixtures shared by the whole suite: a census project made by `conveyor init`, trained once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("CONVEYOR_USER", "tester")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")

INSTALL = "podman is not installed: scripts/install-container-engine.sh installs it"


def make_project(base: Path, name: str) -> Path:
    """`conveyor init` of a small census project with its own secrets and lakes under `base`."""
    from conveyor.cli.main import main

    root = base / name
    code = main(
        ["init", str(root), "--secrets-dir", str(base / "secrets"), "--lakes-dir", str(base / "lakes"), "--rows", "300"]
    )
    assert code == 0
    return root


@pytest.fixture(scope="session")
def census(tmp_path_factory) -> Path:
    """A project with one model version trained in dev (the package and testing rooms' tests share it)."""
    from conveyor.cli.main import main

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


@pytest.fixture(scope="session")
def census_project(tmp_path_factory) -> Path:
    """A fresh census project with private secret files and dev/stage/prod lakes (no model trained)."""
    from conveyor.examples.scaffold import init_project

    root = tmp_path_factory.mktemp("census-home")
    made = init_project(root / "census", secrets_dir=root / "secrets", lakes_dir=root / "lakes", rows=600)
    return made.root


@pytest.fixture(scope="session")
def trained_project(census_project: Path) -> Path:
    """The census project with one model version trained in dev."""
    from conveyor.compute import train
    from conveyor.config import load_project

    out: list[str] = []
    train(load_project(census_project).environment("dev"), out=out.append, err=out.append)
    return census_project
