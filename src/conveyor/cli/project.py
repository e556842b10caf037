"""`conveyor init` and `conveyor train`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import console, emit_json, say, stdout


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    example: Annotated[str, typer.Option(help="Example to start from.")] = "census",
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's name).")] = None,
    secrets_dir: Annotated[
        Path | None, typer.Option(help="Where the dev/stage/prod secret files go (default ~/.conveyor/secrets/NAME).")
    ] = None,
    lakes_dir: Annotated[
        Path | None, typer.Option(help="Where the local dev/stage/prod lakes go (default ~/.conveyor/lakes/NAME).")
    ] = None,
    rows: Annotated[int, typer.Option(min=50, help="Rows of sample census data per environment.")] = 5000,
    git: Annotated[bool, typer.Option(help="Create a git repository with a first commit.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Scaffold a project: conveyor.toml, train.py, score.py, inference/, tests/, and embedded-default stores.

    The census example is the lab's Project_One: "the world's worst regression" of fnlwgt on age and
    hours-per-week. Each environment gets its own private secret file (outside the project) and its own local
    data lake with different sample data; stage's lake also holds the sealed evaluation set. Existing secret
    files and data are never overwritten.

    Then: cd DIRECTORY && conveyor train --env dev
    """
    from conveyor.examples import init_project

    result = init_project(
        directory, example=example, name=name, secrets_dir=secrets_dir, lakes_dir=lakes_dir, rows=rows, git=git
    )
    if as_json:
        lakes = {env: str(lake) for env, lake in result.lakes.items()}
        sealed = None if result.sealed is None else str(result.sealed)
        emit_json(
            {
                "root": str(result.root),
                "secrets_dir": str(result.secrets_dir),
                "created_secrets": [str(path) for path in result.created_secrets],
                "lakes": lakes,
                "sealed": sealed,
                "next": f"cd {result.root} && conveyor train --env dev",
            }
        )
        return
    say(f"created project {result.root}", style="green")
    for path in result.created_secrets:
        say(f"  secret file {path} (mode 600)")
    for env, lake in result.lakes.items():
        say(f"  {env} lake {lake}")
    say(f"next: cd {result.root} && conveyor train --env dev")


def train(
    env: EnvOption = None,
    project: ProjectOption = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments passed to the training script.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the project's training script against an environment's lake, secrets and registry.

    The script runs in its own process with `conveyor.context()`: ctx.env, ctx.secret(key), ctx.lake,
    ctx.log_metric(...), ctx.register_model(path, name). When it ends without error, each model it asked for
    is registered in the environment's MLflow registry as an MLflow pyfunc (score.py + inference code + the
    files), tagged state, created_by, git_commit, data_digest and the logged metrics. A failing script exits 1
    and registers nothing. Secret values are masked in everything it prints.
    """
    from conveyor.compute import train as run_training

    loaded, environment = project_and_env(project, env)
    console.rule(f"train {loaded.name} in {environment.name}")
    result = run_training(environment, args or [], out=sys.stderr.write, err=sys.stderr.write)
    if as_json:
        emit_json(
            {
                "environment": result.environment,
                "run_id": result.run_id,
                "registered": result.registered,
                "confinement": result.confinement,
            }
        )
        return
    if not result.registered:
        say("the script finished but registered no model (call ctx.register_model(path, name))", style="yellow")
    for version in result.registered:
        stdout.print(
            f"registered [bold]{version['name']}[/] version [bold]{version['version']}[/] in {environment.name}"
        )
        for key, value in sorted(version["tags"].items()):
            stdout.print(f"  {key} = {value}")
