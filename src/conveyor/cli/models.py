"""`conveyor models list|show`: what an environment's registry holds."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, plain, stdout

app = typer.Typer(help="Look into an environment's model registry.", no_args_is_help=True)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M") if ms else "-"


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """List registered models and their versions, newest first."""
    from conveyor.registry import ModelRegistry

    _, environment = project_and_env(project, env)
    registry = ModelRegistry(environment)
    names = [name] if name else registry.model_names()
    versions = [v for n in names for v in registry.versions(n)]
    if json_output:
        emit_json([v.to_dict() for v in versions])
        return
    if not versions:
        stdout.print(f"no models registered in {environment.name} (train one: conveyor train --env {environment.name})")
        return
    columns = ["model", "aliases", "state", "by", "created", "commit", "data"]
    table = listing(f"models in {environment.name}", columns, whole=("model", "created", "commit"))
    for v in versions:
        row = (
            f"{v.name}/{v.version}",
            ",".join(v.aliases),
            v.tags.get("state", ""),
            v.tags.get("created_by", ""),
            _when(v.created_at),
            v.tags.get("git_commit", "")[:8],
            v.tags.get("data_digest", "").removeprefix("sha256:")[:8],
        )
        table.add_row(*(plain(cell) for cell in row))
    stdout.print(table)


@app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="NAME, NAME/VERSION or NAME@ALIAS.")],
    env: EnvOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one model version: its tags, aliases, the run's parameters and metrics."""
    from conveyor.registry import ModelRegistry

    _, environment = project_and_env(project, env)
    info = ModelRegistry(environment).resolve(model)
    if json_output:
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
