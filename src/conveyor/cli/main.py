"""The `conveyor` command: one thin module per room, errors as one paragraph with a stable exit code.

Each command's module is imported only when that command runs: `conveyor --help` and `conveyor --version` import
typer and nothing of the rooms (no pydantic, SQLAlchemy or MLflow). `COMMANDS` is the table of top-level commands;
a command added to a room's CLI module (its `COMMANDS`/`GROUPS`, or its `app`) gets one entry here, with the
one-line help `conveyor --help` shows (a test checks the two agree).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import typer
from typer.core import TyperCommand, TyperGroup

from conveyor import __version__
from conveyor.plugins import Entry, Table

if TYPE_CHECKING:
    from typer import _click

HELP = (
    "Carry models from a notebook to production: dev → stage → prod, the tested artifact and nothing else.\n\n"
    "Start with `conveyor demo`, or `conveyor init DIR` then `conveyor train --env dev`."
)
MARKUP: Final[Literal["markdown"]] = "markdown"


@dataclass(frozen=True)
class Command(Entry):
    """A top-level command: its name, where it lives (`module:attribute`, a function or a typer app) and its
    one-line help."""

    def click_command(self) -> _click.Command:
        """Import the command's module and make its click command."""
        found = self.load()
        if isinstance(found, typer.Typer):
            info = typer.models.TyperInfo(found, name=self.name)
            return typer.main.get_group_from_info(
                info, pretty_exceptions_short=True, rich_markup_mode=MARKUP, suggest_commands=True
            )
        return typer.main.get_command_from_info(
            typer.models.CommandInfo(name=self.name, callback=cast("Callable[..., object]", found)),
            pretty_exceptions_short=True,
            rich_markup_mode=MARKUP,
        )

    def placeholder(self) -> _click.Command:
        """A stand-in that only carries the name and help, for listing commands without importing them."""
        return TyperCommand(name=self.name, help=self.summary, rich_markup_mode=MARKUP)


COMMANDS: Table[Command] = Table(
    Command,
    (
        Command(
            "init",
            "conveyor.cli.project:init",
            "Scaffold a project: conveyor.toml, train.py, score.py, inference/, tests/, and embedded-default stores.",
        ),
        Command(
            "train",
            "conveyor.cli.project:train",
            "Run the project's training script against an environment's lake, secrets and registry.",
        ),
        Command(
            "demo",
            "conveyor.cli.demo:demo",
            "Run conveyor's main job end to end on embedded defaults (no cloud account needed).",
        ),
        Command(
            "serve",
            "conveyor.cli.serve:serve",
            "Serve score.py over HTTP: /score, Open Inference Protocol v2, MLflow /invocations, health, metrics.",
        ),
        Command(
            "build",
            "conveyor.cli.package:build",
            "Build the deployable package and OCI image of a registered model version.",
        ),
        Command(
            "verify",
            "conveyor.cli.package:verify",
            "Recompute every digest and fail (exit 1) on any changed byte or any attestation that does not hold.",
        ),
        Command(
            "test",
            "conveyor.cli.package:test",
            "Run the project's tests against the built package, never the source tree.",
        ),
        Command(
            "gate", "conveyor.cli.package:gate", "Check the quality gates of a build on the sealed evaluation set."
        ),
        Command(
            "approve", "conveyor.cli.release:approve", "Approve a pending release: signs an approval with your key."
        ),
        Command(
            "reject",
            "conveyor.cli.release:reject",
            "Reject a pending release (an approver, or the requester withdrawing it): signs a rejection. "
            "It never deploys.",
        ),
        Command(
            "rollback",
            "conveyor.cli.release:rollback",
            "Request the release that was live in STAGE before the current one (or --to RELEASE) again; signs it.",
        ),
        Command(
            "history",
            "conveyor.cli.release:history",
            "What was live in STAGE and when: build, image, who requested and approved, the verified signers and the "
            "attestation digests of each release (or why the ledger does not verify).",
        ),
        Command("models", "conveyor.cli.models:app", "Look into an environment's model registry."),
        Command("secrets", "conveyor.cli.secrets:app", "Manage an environment's secrets (values are never shown)."),
        Command("lake", "conveyor.cli.lake:app", "List, upload and download files in an environment's data lake."),
        Command(
            "base-image",
            "conveyor.cli.package:base_image_app",
            "Base images for `conveyor build`, for machines that cannot pull python:3.11-slim.",
        ),
        Command(
            "release",
            "conveyor.cli.release:release_app",
            "Put a tested, attested build into a stage (qa, prod...) under the stage's policy.",
        ),
        Command(
            "rollout",
            "conveyor.cli.rollout:app",
            "A running rollout (canary or shadow): its figures beside the live release's, and a watcher that aborts "
            "it.",
        ),
        Command(
            "releases",
            "conveyor.cli.release:releases_app",
            "Look at releases: list them or show one (with signers and attestations).",
        ),
        Command(
            "audit",
            "conveyor.cli.release:audit_app",
            "The ledger's events: every request, approval, rejection and deployment step, signed by its actor and "
            "chained to the one before.",
        ),
        Command(
            "pipeline",
            "conveyor.cli.pipeline:pipeline_app",
            "Build and release pipelines as code: the commands CI runs, runnable here.",
        ),
        Command("ci", "conveyor.cli.pipeline:ci_app", "Write CI definitions that call the pipelines' commands."),
        Command(
            "score-batch",
            "conveyor.cli.batch:score_batch",
            "Score a lake dataset: each row of --input with the model's predictions appended, written to --output.",
        ),
        Command(
            "ui",
            "conveyor.cli.ui:ui",
            "Serve a read-only dashboard of the release line: stages, waiting approvals, builds, models, audit.",
        ),
    ),
)


class LazyCommands(TyperGroup):
    """The root group: lists commands from `COMMANDS`, and imports a command's module only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.listing = False
        self.loaded: dict[str, _click.Command] = {}  # each module is imported once

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        if self.listing or (ctx.resilient_parsing and COMPLETING not in os.environ):
            return entry.placeholder()
        if cmd_name not in self.loaded:
            self.loaded[cmd_name] = entry.click_command()
        return self.loaded[cmd_name]

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


COMPLETING = "_CONVEYOR_COMPLETE"  # set by the shell's completion script: the command asked about is loaded


def _version(value: bool) -> None:
    if value:
        print(f"conveyor {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="conveyor",
    cls=LazyCommands,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=MARKUP,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """conveyor: environments, secrets, training, packaging, tested releases and serving for models."""


def command() -> _click.Command:
    """The whole CLI as one click command (the rooms' modules are imported when their command runs)."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyCommands)  # noqa: S101 -- narrows for mypy: app is built with cls=LazyCommands
    root.commands = {name: entry.placeholder() for name, entry in COMMANDS.items()}  # for typo suggestions
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 failed check, 2 bad usage or configuration)."""
    from conveyor.errors import ConveyorError
    from conveyor.secrets import install_redaction

    install_redaction()
    args = list(argv) if argv is not None else sys.argv[1:]
    shell = _completion_shell(args)
    if shell is not None:  # typer's flag ignores a named shell and detects the parent's (`sh` in a Dockerfile)
        from typer._completion_shared import get_completion_script  # where typer defines it

        print(get_completion_script(prog_name="conveyor", complete_var=COMPLETING, shell=shell))
        return 0
    try:
        command().main(args=args, prog_name="conveyor", standalone_mode=True)
    except ConveyorError as error:
        from conveyor.cli.output import emit_json_error, fail

        fail(error.message, error.hint)
        if "--json" in args:
            emit_json_error(error.message, error.hint, error.exit_code)
        return error.exit_code
    except SystemExit as done:  # usage errors (2), --help and --version (0), Ctrl-C (1 from click's Abort)
        return done.code if isinstance(done.code, int) else 0
    finally:
        output = sys.modules.get("conveyor.cli.output")  # loaded by a command that printed; not imported here
        if output is not None:
            output.new_command()  # the next main() in this process starts with nothing on stdout
    return 0


SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _completion_shell(args: Sequence[str]) -> str | None:
    """The shell `conveyor --show-completion SHELL` names (also `--show-completion=SHELL`), if it is one typer
    writes a script for."""
    if len(args) == 2 and args[0] == "--show-completion":
        named = args[1]
    elif len(args) == 1 and args[0].startswith("--show-completion="):
        named = args[0].partition("=")[2]
    else:
        return None
    return named if named in SHELLS else None


if __name__ == "__main__":
    sys.exit(main())
