"""`conveyor pipeline show|run` and `conveyor ci render`: pipelines as code, the same on a laptop and in CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.options import JsonOption, ProjectOption
from conveyor.cli.output import emit_json, listing, say, stdout
from conveyor.config import ENV_VARIABLE, chosen_environment

pipeline_app = typer.Typer(
    help="Build and release pipelines as code: the commands CI runs, runnable here.", no_args_is_help=True
)
ci_app = typer.Typer(help="Write CI definitions that call the pipelines' commands.", no_args_is_help=True)

PipelineArgument = Annotated[str, typer.Argument(help="build or release.")]


@pipeline_app.command("show")
def show(name: PipelineArgument, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show a pipeline's steps and the exact commands they run (with the steps the project file adds)."""
    from conveyor.config import find_project_root, load_project
    from conveyor.errors import ConfigError
    from conveyor.pipelines import find_pipeline

    try:
        root = find_project_root(project)
    except ConfigError:  # outside a project: the standard steps
        pipeline = find_pipeline(name)
    else:
        pipeline = find_pipeline(name, load_project(root))
    if as_json:
        emit_json(
            {
                "name": pipeline.name,
                "parameters": pipeline.parameters,
                "steps": [{"name": s.name, "title": s.title, "command": ["conveyor", *s.args]} for s in pipeline.steps],
            }
        )
        return
    table = listing(f"pipeline {pipeline.name}: {pipeline.description}", ["step", "what", "command"], whole=("step",))
    for step in pipeline.steps:
        table.add_row(step.name, step.title, "conveyor " + " ".join(step.args) + (" --json" if step.json else ""))
    stdout.print(table)
    for key, text in pipeline.parameters.items():
        stdout.print(f"parameter {key}: {text}")


@pipeline_app.command("run")
def run(
    name: PipelineArgument,
    project: ProjectOption = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE, e.g. env=stage.")] = None,
    step: Annotated[str | None, typer.Option(help="Run only this step, continuing the run kept in results/.")] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", callback=chosen_environment, help=f"Shorthand for --param env=ENV. Default: ${ENV_VARIABLE}."
        ),
    ] = None,
    build: Annotated[str | None, typer.Option(help="Shorthand for --param build=BUILD.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline here, exactly as CI runs it: each step is a conveyor command in its own process.

    `conveyor pipeline run build --env stage` trains on stage, builds, tests what ships and runs the gates;
    `conveyor pipeline run release --build BUILD` releases to QA and requests production. The run's state is
    kept in results/pipeline-NAME.json, so CI can run one step at a time with --step.
    """
    from conveyor.config import load_project
    from conveyor.pipelines import parse_parameters, run_pipeline

    parameters = parse_parameters(param)
    if env:
        parameters.setdefault("env", env)
    if build:
        parameters.setdefault("build", build)
    result = run_pipeline(load_project(project).root, name, parameters, only=step, announce=say)
    if as_json:  # the steps' own output went to stderr: stdout holds only this document
        emit_json(result.to_dict())
        return
    say(f"pipeline {name} ok: " + ", ".join(f"{s['name']} {s['seconds']}s" for s in result.steps), style="green")


@ci_app.command("render")
def render(
    system: Annotated[str, typer.Argument(help="github or azure.")],
    project: ProjectOption = None,
    env: Annotated[str, typer.Option(help="Environment the build pipeline trains and builds in.")] = "stage",
    install: Annotated[
        str | None,
        typer.Option(
            help="The command that installs conveyor on the CI machine. Default: this conveyor, pinned (its git "
            "commit, its version on the index, or a wheel of it written to ci/wheels/ to commit with the CI files)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder to write into (default: the project).")] = None,
    force: Annotated[bool, typer.Option(help="Replace files that exist.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write CI definitions whose steps are `conveyor pipeline run NAME --step STEP`.

    github writes .github/workflows/conveyor-build.yml and conveyor-release.yml; azure writes
    azure-pipelines.yml with JUnit and Cobertura publishing, like the lab's pipelines. The environment's secrets
    reach conveyor as CI secrets through `CONVEYOR_SECRETS_<ENV>=env://CONVEYOR_<ENV>_`.
    """
    from conveyor.config import load_project
    from conveyor.pipelines import render_ci

    written = render_ci(load_project(project), system, env=env, install=install, out=out, force=force)
    if as_json:
        emit_json({"system": system, "env": env, "written": [str(path) for path in written]})
        return
    for path in written:
        stdout.print(str(path))


GROUPS = {"pipeline": pipeline_app, "ci": ci_app}
