"""`Any` in what the rooms offer is counted: the signatures of the names in each room's `__all__` (functions'
parameters and returns, exported classes' public methods, properties and fields). The count may only go down."""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import conveyor

RECORDED = 58  # lower it when the count goes down; it may not go up (58: JSON forms as dict[str, object])

SOURCE = Path(conveyor.__file__).parent
ROOMS = sorted(p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file() and p.name not in ("cli", "examples"))


def anys_in(hint: object) -> int:
    """How many times `Any` appears in a resolved type hint."""
    if hint is typing.Any:
        return 1
    return sum(anys_in(arg) for arg in typing.get_args(hint))


def anys_of(owner: object) -> dict[str, int]:
    """`Any`s per annotated name of a function or class; annotations that do not resolve are read as text."""
    try:
        hints = typing.get_type_hints(owner)
    except (NameError, TypeError):
        raw = getattr(owner, "__annotations__", {})
        return {name: len(re.findall(r"\bAny\b", str(text))) for name, text in raw.items()}
    return {name: anys_in(hint) for name, hint in hints.items()}


def functions_of(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    """The public methods (and `__init__`) and property getters a class and its conveyor bases define."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("conveyor"):
            continue
        for name, member in vars(klass).items():
            if name in seen or (name.startswith("_") and name != "__init__"):
                continue
            seen.add(name)
            function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if inspect.isfunction(function):
                yield name, function


def holes() -> dict[str, int]:
    """`room.Name[.member]:annotation` → how many `Any`s it holds, for every exported signature holding one."""
    found: dict[str, int] = {}
    for room in ROOMS:
        module = importlib.import_module(f"conveyor.{room}")
        for name in module.__all__:
            exported = getattr(module, name)
            where = f"{room}.{name}"
            if inspect.isclass(exported):
                owners: list[tuple[str, object]] = [(where, exported)]
                owners += [(f"{where}.{member}", function) for member, function in functions_of(exported)]
            elif inspect.isfunction(exported):
                owners = [(where, exported)]
            else:
                continue
            for label, owner in owners:
                for annotation, count in anys_of(owner).items():
                    if count:
                        found[f"{label}:{annotation}"] = count
    return found


def test_the_count_of_any_in_the_rooms_signatures_does_not_go_up() -> None:
    found = holes()
    count = sum(found.values())
    listing = "\n".join(f"  {where}: {n}" for where, n in sorted(found.items()))
    assert count <= RECORDED, f"{count} Any in exported signatures, {RECORDED} recorded:\n{listing}"
    assert count == RECORDED, f"only {count} Any now (recorded {RECORDED}): lower RECORDED in this test"


def test_the_counter_sees_an_any() -> None:
    def takes(value: typing.Any, rest: dict[str, list[typing.Any]]) -> typing.Any: ...

    assert anys_of(takes) == {"value": 1, "rest": 1, "return": 1}
