"""Fixtures shared by the whole suite: a census project made by `conveyor init`, trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("CONVEYOR_USER", "tester")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


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
