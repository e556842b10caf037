"""`conveyor secrets list|set|check`: names only, never values."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, plain, say, show_listing, stdout
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Manage an environment's secrets (values are never shown).", no_args_is_help=True)


@app.command("list")
def list_secrets(env: EnvOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the names of the secrets in the environment's store."""
    _, environment = project_and_env(project, env)
    names = environment.secrets.names()
    store = environment.secrets.url

    def table() -> Table:
        made = listing(f"{len(names)} secrets in {store}", ["name"], whole=("name",))
        for name in names:
            made.add_row(plain(name))
        return made

    empty = f"no secrets in {store} (set one: conveyor secrets set KEY --env {environment.name})"
    show_listing({"store": store, "names": names}, names, empty, table, as_json=as_json)


@app.command("set")
def set_secret(
    key: Annotated[str, typer.Argument(help="Secret name, e.g. sp-password.")],
    env: EnvOption = None,
    project: ProjectOption = None,
    value_from_stdin: Annotated[bool, typer.Option("--stdin", help="Read the value from standard input.")] = False,
) -> None:
    """Set one secret; the value is read from a hidden prompt (or --stdin), never from the command line."""
    _, environment = project_and_env(project, env)
    if value_from_stdin:
        value = sys.stdin.read().rstrip("\n")
    else:
        value = typer.prompt(f"value for {key}", hide_input=True, confirmation_prompt=True)
    if not value:
        raise ConveyorError(f"refusing to set {key!r} to an empty value")
    environment.secrets.set(key, value)
    say(f"set {key} in {environment.secrets.url}")


@app.command("check")
def check(env: EnvOption = None, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Report which secrets the project needs in this environment and which are missing, and every value of the
    store (used or not) too weak to mask: shorter than 8 characters, a number, a common word (exit 1 if any).

    `--env gates` checks the gate step's own store (the sealed evaluation set's location), which no
    environment's store holds.
    """
    from conveyor.config import check_secrets, load_project

    result = check_secrets(load_project(project), env)
    if as_json:
        emit_json(result.to_dict())
    else:
        weak = dict(result.weak)
        for name in sorted({*result.needed, *weak}):
            label = "missing" if name in result.missing else "weak" if name in weak else "ok"
            stdout.print(f"  [{'green' if label == 'ok' else 'red'}]{label:>7}[/]  {name}")
    result.require()
