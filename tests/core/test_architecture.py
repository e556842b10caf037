"""The layering of the rooms, the one-way imports inside each room and the training child's bounds are checked
(import-linter's contracts in pyproject.toml), and each check bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(conveyor.__file__).parent


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(tool), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_rooms_keep_their_layers() -> None:
    done = _lint_imports(SOURCE.parent)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 4 kept, 0 broken." in done.stdout


def test_a_room_importing_the_cli_breaks_the_contract(tmp_path: Path) -> None:
    copy = tmp_path / "src" / "conveyor"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    app = copy / "serving" / "app.py"
    app.write_text(app.read_text() + "\nfrom conveyor.cli.output import say  # a deliberate violation\n")
    done = _lint_imports(tmp_path / "src")
    assert done.returncode == 1
    assert "conveyor.serving is not allowed to import conveyor.cli" in done.stdout
    assert "conveyor.serving.app -> conveyor.cli.output" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "said"),
    [
        (  # the registry's contract importing its chooser closes a circle
            "registry/reader.py",
            "from conveyor.registry.reading import open_reader",
            "No cycles are allowed in conveyor.registry.",
        ),
        (  # the child's lake reaching for a store
            "training/remote_lake.py",
            "from conveyor.secrets.file import FileSecretStore",
            "conveyor.training.remote_lake is not allowed to import conveyor.secrets",
        ),
        (  # or for the project, and through it the lake's credentials
            "training/context.py",
            "from conveyor.config import load_project",
            "conveyor.training.context is not allowed to import conveyor.lake.credentials",
        ),
    ],
)
def test_a_circle_in_a_room_or_a_child_reaching_for_the_host_breaks_a_contract(
    tmp_path: Path, module: str, line: str, said: str
) -> None:
    copy = tmp_path / "src" / "conveyor"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    changed = copy / module
    changed.write_text(changed.read_text() + f"\n{line}  # a deliberate violation\n")
    done = _lint_imports(tmp_path / "src")
    assert done.returncode == 1
    assert said in done.stdout, done.stdout[-3000:]
