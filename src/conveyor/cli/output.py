"""How the CLI talks: rich messages on stderr, data (tables or --json) on stdout, errors as one paragraph.

The two consoles are made on first use, so a command that prints only JSON never imports rich.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, cast

from conveyor.secrets import mask_json, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sized

    from rich.console import Console
    from rich.table import Table


class _LazyConsole:
    """A rich `Console` made when it is first used (`Console(**options)`)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = cast("Console", _LazyConsole(stderr=True, highlight=False))
stdout = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))


def listing(title: str | None, columns: list[str], *, whole: Collection[str] = ()) -> Table:
    """A compact table for a listing on stdout: no side borders, one space between columns, so a typical row fits
    80 columns; the `whole` columns (names, versions, times) are never broken, the others fold when they must."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), title_justify="left"
    )
    for column in columns:
        table.add_column(column, no_wrap=column in whole, overflow="fold")
    return table


def show_listing(data: Any, rows: Sized, empty: str, table: Callable[[], Table], *, as_json: bool) -> bool:
    """What a listing command prints: `data` as JSON under `--json`; else `empty` (a message, on stderr) when
    there are no `rows`; else the table `table()` makes, on stdout. True when the table was printed (what
    follows it, if anything, is the caller's)."""
    if as_json:
        emit_json(data)
        return False
    if not rows:
        say(empty)
        return False
    stdout.print(table())
    return True


class _JsonState:
    emitted = False  # whether this process has printed its JSON document yet


def new_command() -> None:
    """A command starts: nothing of it is on stdout yet (main() may run several in one process)."""
    _JsonState.emitted = False


def emit_json(data: Any) -> None:
    """Print `data` as JSON on stdout, secrets masked."""
    _JsonState.emitted = True
    sys.stdout.write(json.dumps(mask_json(data), indent=2, sort_keys=True, default=lambda o: redact(str(o))) + "\n")


def emit_json_error(message: str, hint: str | None, exit_code: int) -> None:
    """Under --json, an error is a JSON document too (unless the command already printed its own): CI that reads
    stdout learns what failed, not only that it did."""
    if not _JsonState.emitted:
        emit_json({"error": {"message": message, "hint": hint, "exit_code": exit_code}})


def plain(text: object) -> str:
    """`text` as rich shows it literally: brackets in a user's value (a path, a name) are not markup."""
    from rich.markup import escape

    return escape(str(text))


def say(message: str, style: str | None = None) -> None:
    """A message on stderr, shown literally (in `style` if given)."""
    console.print(plain(redact(message)), style=style)


def fail(message: str, hint: str | None = None) -> None:
    console.print(f"[bold red]error:[/] {plain(redact(message))}", soft_wrap=True)
    if hint:
        console.print(plain(redact(hint)), style="dim", soft_wrap=True)
