"""`python -m conveyor.serving SOURCE [options]`: the same as `conveyor serve`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from conveyor.cli.serve import serve
from conveyor.errors import ConveyorError


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(serve)
    try:
        app(standalone_mode=False)
    except ConveyorError as exc:
        console = Console(stderr=True)
        console.print(f"[red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            console.print(exc.hint, highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
