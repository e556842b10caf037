"""Plug-in tables: the one shape of conveyor's computes, deploy targets, secret stores, batch engines and commands.

Each table maps a name to an `Entry` that names its implementation as `package.module:attribute` (the form of
Python entry points, resolved with `pkgutil.resolve_name` only when it is used) and carries what the rest of
conveyor needs to know about it without importing it. A table with a `group` also holds the entries third-party
distributions register under that entry-point group (`conveyor.targets`, `conveyor.computes`,
`conveyor.secrets`): the entry point's name is the entry's name and its value is the entry itself, e.g.

    [project.entry-points."conveyor.targets"]
    file = "example_target:TARGET"

Built-in entries win on a name clash, and the plug-in that lost is named in a warning.
"""

from __future__ import annotations

import logging
import pkgutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

log = logging.getLogger("conveyor.plugins")


@dataclass(frozen=True)
class Entry:
    """One plug-in: its name in its table, where its implementation is (`module:attribute`) and what it does."""

    name: str
    implementation: str
    summary: str

    def load(self) -> object:
        """The implementation, imported now."""
        return resolve(self.implementation)


def resolve(reference: str) -> object:
    """The object `package.module:attribute` (the attribute may be dotted: `module:Class.from_url`) names."""
    if ":" not in reference:
        raise ValueError(f"{reference!r} is not a `package.module:attribute` reference")
    return pkgutil.resolve_name(reference)


E = TypeVar("E", bound=Entry)


class Table(Mapping[str, E], Generic[E]):
    """The built-in entries, then the ones installed distributions register under `group` (read once per
    `sys.path`)."""

    def __init__(self, kind: type[E], builtins: Iterable[E], group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.builtins = {entry.name: entry for entry in builtins}
        self._path: tuple[str, ...] | None = None
        self._entries = dict(self.builtins)

    def entries(self) -> dict[str, E]:
        """Every entry by name: built-ins first, then plug-ins in the order of their distributions' names."""
        if self.group is None:
            return self._entries
        path = tuple(sys.path)
        if path != self._path:
            self._entries = {**self.builtins, **self._installed()}
            self._path = path
        return self._entries

    def _installed(self) -> dict[str, E]:
        from importlib import metadata  # only when a table with plug-ins is read: `conveyor --help` stays light

        assert self.group is not None  # noqa: S101 -- narrows for mypy: read only for a table with a plug-in group
        found: dict[str, E] = {}
        points = sorted(metadata.entry_points(group=self.group), key=lambda p: (_distribution(p), p.name))
        for point in points:
            where = f"{point.name} = {point.value!r} (entry point {self.group} of {_distribution(point)})"
            if point.name in self.builtins or point.name in found:
                owner = "conveyor's built-in" if point.name in self.builtins else "an earlier plug-in's"
                log.warning("conveyor: ignoring plug-in %s: %s %r comes first", where, owner, point.name)
                continue
            try:
                entry = point.load()
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"plug-in {where} cannot be loaded: {exc}", hint=_FIX) from None
            if not isinstance(entry, self.kind) or entry.name != point.name:
                raise ConfigError(
                    f"plug-in {where} names {entry!r}, not a {self.kind.__name__} named {point.name!r}", hint=_FIX
                )
            found[point.name] = entry
        return found

    def __getitem__(self, name: str) -> E:
        return self.entries()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self.entries())


_FIX = "Fix or uninstall the distribution that declares it."


def _distribution(point: EntryPoint) -> str:
    return point.dist.name if point.dist is not None else "an unnamed distribution"
