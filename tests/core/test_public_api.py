"""The Python API is curated, as httpx's is: each room's `__all__` is what it offers, and the CLI (the other door
onto the same functions) reaches a room only through it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import conveyor

SOURCE = Path(conveyor.__file__).parent
ROOMS = sorted(p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file() and p.name not in ("cli", "examples"))
LEAVES = ("conveyor.errors", "conveyor.plugins", "conveyor.demo")  # single-module rooms


def _isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions, each alphabetical: the order ruff keeps `__all__` in."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_offers_a_sorted_api_that_resolves(room: str) -> None:
    module = importlib.import_module(f"conveyor.{room}")
    offered = list(getattr(module, "__all__", []))
    assert offered, f"conveyor.{room} declares no __all__"
    assert offered == sorted(offered, key=_isort_style), f"conveyor.{room}.__all__ is not sorted (ruff's RUF022)"
    assert len(set(offered)) == len(offered)
    for name in offered:
        assert getattr(module, name) is not None, f"conveyor.{room}.{name} does not resolve"


def _room_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every `from conveyor.X... import name` outside the CLI's own modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("conveyor."):
            if node.module.startswith("conveyor.cli"):
                continue
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def test_the_cli_reaches_each_room_through_its_api() -> None:
    wrong = []
    for path in sorted((SOURCE / "cli").glob("*.py")):
        for line, module, name in _room_imports(path):
            if module in LEAVES:
                continue
            room = importlib.import_module(module)
            if module.count(".") != 1 or name not in getattr(room, "__all__", ()):
                wrong.append(f"cli/{path.name}:{line}: from {module} import {name}")
    assert not wrong, "the CLI imports past a room's API (add the name to the room's __all__):\n" + "\n".join(wrong)


def test_the_package_offers_the_training_context() -> None:
    assert conveyor.__all__ == ["__version__", "context"]
