"""`conveyor demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.output import console, emit_json, stdout


def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to put the demo (default: a new temporary folder).")
    ] = None,
    rows: Annotated[int, typer.Option(min=50, help="Rows of sample census data per environment.")] = 5000,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run conveyor's main job end to end on embedded defaults (no cloud account needed).

    In a new project it scaffolds the census example, writes private secret files and a local data lake for
    dev, stage and prod, trains in dev (MLflow registry in the project), lists the registered model with its
    lineage tags, then trains the same code in stage and shows that dev's registry did not change.
    """
    from conveyor.demo import run_demo

    report = run_demo(console, directory, rows)
    if json_output:
        emit_json(
            {
                "root": str(report.root),
                "project": str(report.project),
                "steps": report.steps,
                **{k: v for k, v in report.facts.items() if k != "training_output"},
            }
        )
        return
    dev = report.facts["dev_model"]
    table = Table(title=f"{dev['name']} version {dev['version']} in dev", show_header=True)
    table.add_column("tag")
    table.add_column("value")
    for key, value in sorted(dev["tags"].items()):
        table.add_row(key, value)
    stdout.print(table)
    stage = report.facts["stage_model"]
    stdout.print(
        f"stage registry: {stage['name']} version {stage['version']} (state={stage['tags'].get('state')}); "
        f"dev registry still holds versions {report.facts['dev_versions_after_stage']}"
    )
    stdout.print(f"project:  {report.project}")
    stdout.print(f"secrets:  {report.facts['secrets']} (one private file per environment)")
    for env, lake in report.facts["lakes"].items():
        stdout.print(f"{env + ' lake:':9} {lake}")
    stdout.print(f"registries: {report.project}/.conveyor/<env>/mlflow.db")
    stdout.print(f"try: cd {report.project} && conveyor models show {dev['name']}/{dev['version']} --env dev")
