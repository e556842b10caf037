"""The layering of the rooms is checked (import-linter's contracts in pyproject.toml), and the check bites."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import conveyor

REPO = Path(__file__).resolve().parents[2]
SOURCE = Path(conveyor.__file__).parent


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(tool), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=src, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_rooms_keep_their_layers() -> None:
    done = _lint_imports(SOURCE.parent)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_a_room_importing_the_cli_breaks_the_contract(tmp_path: Path) -> None:
    copy = tmp_path / "src" / "conveyor"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    app = copy / "serving" / "app.py"
    app.write_text(app.read_text() + "\nfrom conveyor.cli.output import say  # a deliberate violation\n")
    done = _lint_imports(tmp_path / "src")
    assert done.returncode == 1
    assert "conveyor.serving is not allowed to import conveyor.cli" in done.stdout
    assert "conveyor.serving.app -> conveyor.cli.output" in done.stdout
