"""`python -m conveyor.serving SOURCE [options]`: the same as `conveyor serve`."""

from __future__ import annotations

import sys

import typer

from conveyor.cli.output import fail
from conveyor.cli.serve import serve
from conveyor.errors import ConveyorError


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    try:
        app()  # standalone: typer reports usage errors itself (exit 2)
    except ConveyorError as exc:
        fail(exc.message, exc.hint)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
