"""The CLI imports a room only when one of its commands runs: `--help` and `--version` stay light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli.main import COMMANDS, command

HEAVY = ("pydantic", "sqlalchemy", "alembic", "mlflow", "httpx", "fsspec", "pandas", "conveyor.config")


def imported_by(argv: list[str], tmp_path: Path, cwd: Path | None = None) -> tuple[int, set[str]]:
    """Run the CLI with `argv` in a new interpreter; its exit code and the modules it had imported at the end."""
    out = tmp_path / "modules.json"
    code = (
        "import json, sys\n"
        "from conveyor.cli.main import main\n"
        "code = main(sys.argv[2:])\n"
        "json.dump(sorted(sys.modules), open(sys.argv[1], 'w'))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), *argv], capture_output=True, text=True, cwd=cwd or tmp_path
    )
    return done.returncode, set(json.loads(out.read_text())) if out.exists() else set()


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_version_imports_no_room_and_no_rich(tmp_path):
    code, modules = imported_by(["--version"], tmp_path)
    assert code == 0
    assert heavy_in(modules) == []
    assert not {m for m in modules if m.startswith(("rich", "conveyor.cli."))} - {"conveyor.cli.main"}


def test_help_imports_no_command_module(tmp_path):
    code, modules = imported_by(["--help"], tmp_path)
    assert code == 0
    assert heavy_in(modules) == []
    loaded = {m for m in modules if m.startswith("conveyor.cli.")}
    assert loaded <= {"conveyor.cli.main", "conveyor.cli.output"}, loaded


def test_a_command_imports_only_its_own_module(tmp_path):
    code, modules = imported_by(["secrets", "--help"], tmp_path)
    assert code == 0
    loaded = {m for m in modules if m.startswith("conveyor.cli.")}
    assert "conveyor.cli.secrets" in loaded
    assert not loaded & {"conveyor.cli.release", "conveyor.cli.package", "conveyor.cli.demo", "conveyor.cli.serve"}


def _first_paragraph(text: str) -> str:
    import inspect

    return inspect.cleandoc(text).split("\n\n")[0].replace("\n", " ")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_help_is_the_commands_own(name):
    """`conveyor --help` lists each command with the first paragraph of the command's own help."""
    real = COMMANDS[name].click_command()
    own = _first_paragraph(real.short_help or real.help or "")
    assert COMMANDS[name].summary == own, f"update COMMANDS[{name!r}] in conveyor/cli/main.py to: {own!r}"


def test_every_command_a_room_declares_is_listed():
    """A room's CLI module declares its commands (COMMANDS/GROUPS, or `app`); each has an entry in the table."""
    targets = {entry.implementation for entry in COMMANDS.values()}
    modules = {entry.implementation.partition(":")[0] for entry in COMMANDS.values()}
    cli = Path(importlib.import_module("conveyor.cli").__file__ or "").parent
    on_disk = {
        f"conveyor.cli.{p.stem}"
        for p in cli.glob("*.py")
        if p.stem not in ("__init__", "main", "options", "output", "release_text")
    }
    assert on_disk <= modules, f"CLI modules with no command in conveyor/cli/main.py COMMANDS: {on_disk - modules}"
    for module_name in sorted(modules):
        module = importlib.import_module(module_name)
        for table in ("COMMANDS", "GROUPS"):
            for name, found in getattr(module, table, {}).items():
                attribute = next(a for a, v in vars(module).items() if v is found and not a.startswith("_"))
                assert f"{module_name}:{attribute}" in targets, f"{name} of {module_name} is not in COMMANDS"
                assert COMMANDS[name].implementation == f"{module_name}:{attribute}"


def test_typo_is_suggested_and_exits_2(capsys):
    from conveyor.cli.main import main

    assert main(["modls"]) == 2
    assert "Did you mean 'models'" in capsys.readouterr().err


def test_root_lists_every_command():
    root = command()
    assert set(root.commands) == set(COMMANDS)  # type: ignore[attr-defined]
