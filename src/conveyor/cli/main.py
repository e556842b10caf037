"""The `conveyor` command: one thin module per room, errors as one paragraph with a stable exit code."""

from __future__ import annotations

import sys

import typer

from conveyor import __version__
from conveyor.cli import demo, models, project, secrets
from conveyor.cli.output import fail
from conveyor.errors import ConveyorError
from conveyor.secrets import redaction

app = typer.Typer(
    name="conveyor",
    help="Carry models from a notebook to production: dev → stage → prod, the tested artifact and nothing else.\n\n"
    "Start with `conveyor demo`, or `conveyor init DIR` then `conveyor train --env dev`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        print(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """conveyor: environments, secrets, training, packaging, tested releases and serving for models."""


app.command()(project.init)
app.command()(project.train)
app.command()(demo.demo)
app.add_typer(models.app, name="models")
app.add_typer(secrets.app, name="secrets")


ROOM_MODULES = ("lake", "serve", "package", "release", "pipeline", "batch")


def _add_rooms() -> None:
    """Commands of the rooms that declare `COMMANDS` (name → function) and `GROUPS` (name → typer app)."""
    import importlib

    for room in ROOM_MODULES:
        module = importlib.import_module(f"conveyor.cli.{room}")
        for name, function in getattr(module, "COMMANDS", {}).items():
            app.command(name)(function)
        for name, group in getattr(module, "GROUPS", {}).items():
            app.add_typer(group, name=name)
        if not hasattr(module, "COMMANDS") and not hasattr(module, "GROUPS"):
            if isinstance(getattr(module, "app", None), typer.Typer):
                app.add_typer(module.app, name=room)
            elif callable(getattr(module, room, None)):
                app.command(room)(getattr(module, room))


_add_rooms()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed check, 2 bad usage or configuration)."""
    redaction.install()
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="conveyor", standalone_mode=True)
    except ConveyorError as error:
        fail(error.message, error.hint)
        return error.exit_code
    except SystemExit as done:  # usage errors (2), --help and --version (0), Ctrl-C (1 from click's Abort)
        return done.code if isinstance(done.code, int) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
