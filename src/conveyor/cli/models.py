"""`conveyor models list|show`: what an environment's registry holds."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, plain, show_listing, stdout

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Look into an environment's model registry.", no_args_is_help=True)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M") if ms else "-"


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List registered models and their versions, newest first.

    `env` is the environment whose lake trained the version (its `environment` tag; `state` is the
    project's own label for it, the lab's alg-state, kept as a tag). A version a release copied into this
    registry (prod's, for the prod stage) keeps those tags and says `copied from ENV`: an environment is where a
    model is trained and registered, a release stage (`[release.*]`) is where it is deployed.
    """
    from conveyor.registry import ModelRegistry

    _, environment = project_and_env(project, env)
    registry = ModelRegistry(environment)
    names = [name] if name else registry.model_names()
    versions = [v for n in names for v in registry.versions(n)]

    def table() -> Table:
        columns = ["model", "aliases", "env", "by", "created", "commit", "data"]
        made = listing(f"models in {environment.name}", columns, whole=("model", "created", "commit"))
        for v in versions:
            row = (
                f"{v.name}/{v.version}",
                ",".join(v.aliases),
                _trained_in(v.tags),
                v.tags.get("created_by", ""),
                _when(v.created_at),
                v.tags.get("git_commit", "")[:8],
                v.tags.get("data_digest", "").removeprefix("sha256:")[:8],
            )
            made.add_row(*(plain(cell) for cell in row))
        return made

    empty = f"no models registered in {environment.name} (train one: conveyor train --env {environment.name})"
    show_listing([v.to_dict() for v in versions], versions, empty, table, as_json=as_json)


def _trained_in(tags: dict[str, str]) -> str:
    trained = tags.get("environment") or tags.get("state", "")
    source = tags.get("conveyor.source")
    return f"{trained} (copied from {source.split(':')[0]})" if source else trained


@app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS.")],
    env: EnvOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one model version: its tags, aliases, the run's parameters and metrics."""
    from conveyor.registry import ModelRegistry

    _, environment = project_and_env(project, env)
    info = ModelRegistry(environment).resolve(model)
    if as_json:
        emit_json(info.to_dict())
        return
    stdout.print(
        f"[bold]{plain(info.name)}[/] version [bold]{info.version}[/] in {environment.name}"
        f"{' (aliases: ' + plain(', '.join(info.aliases)) + ')' if info.aliases else ''}"
    )
    stdout.print(f"  created {_when(info.created_at)}, run {info.run_id}")
    for title, values in (("tags", info.tags), ("metrics", info.metrics), ("params", info.params)):
        stdout.print(f"  {title}:")
        for key, value in sorted(values.items()):
            stdout.print(plain(f"    {key} = {value}"))
