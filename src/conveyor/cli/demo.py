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
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the QA and prod scoring servers running afterwards.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run conveyor's main job end to end on embedded defaults (no cloud account needed).

    In a new project: scaffold the census example with private secret files and a local data lake per
    environment; train in dev and in stage (each its own MLflow registry); build the stage model's package and
    OCI image; run the project's tests inside that image; check the quality gates on stage's sealed evaluation
    set; release to QA; promote to prod, where the requester's own approval is refused and a second approver's
    deploys the exact tested image; score a request against prod; verify the audit chain.
    """
    from conveyor.demo import run_demo

    report = run_demo(console, directory, rows, keep_running=keep_running)
    facts = report.facts
    if json_output:
        emit_json({"root": str(report.root), "project": str(report.project), "steps": report.steps, **facts})
        return
    dev = facts["dev_model"]
    table = Table(title=f"{dev['name']} version {dev['version']} in dev", show_header=True)
    table.add_column("tag")
    table.add_column("value", overflow="fold")
    for key, value in sorted(dev["tags"].items()):
        table.add_row(key, value)
    stdout.print(table)
    stage = facts["stage_model"]
    stdout.print(
        f"stage registry: {stage['name']} version {stage['version']} (state={stage['tags'].get('state')}); "
        f"dev registry still holds versions {facts['dev_versions_after_stage']}"
    )
    build, tests = facts["build"], facts["tests"]
    stdout.print(f"package digest: {build['digest']}")
    image = build.get("image")
    stdout.print(f"image digest:   {image['digest'] if image else 'none (no container engine: tests ran in a venv)'}")
    cover = f", coverage {tests['coverage_percent']}%" if tests.get("coverage_percent") is not None else ""
    stdout.print(f"tests:          {tests['passed']} passed, {tests['failed']} failed{cover}, ran in {tests['ran_in']}")
    gates = ", ".join(
        f"{g['metric']}={g['value']:.4g} ({g['rule']}: {'pass' if g['passed'] else 'FAIL'}"
        f"{', no champion in prod yet' if 'champion' in g['rule'] and g.get('champion') is None else ''})"
        for g in facts["gates"]["results"]
    )
    stdout.print(f"gates:          {gates}")
    releases = facts["releases"]
    stdout.print(f"qa release:     #{releases['qa']['id']} {releases['qa']['status']}")
    stdout.print(
        f"prod release:   #{releases['prod']['id']} {releases['prod']['status']}, "
        f"approved by {', '.join(releases['prod'].get('approved_by') or [])}"
    )
    stdout.print(f"refused:        {facts['refused']}")
    answer = facts["prod_answer"]
    stdout.print(f"prod answered:  {answer['response']} for {answer['request']}")
    stdout.print(f"audit chain:    {facts['audit']['entries']} entries, head {facts['audit']['head'][:16]}")
    stdout.print(f"project:        {report.project}")
    stdout.print(f"secrets:        {facts['secrets']} (one private file per environment)")
    stdout.print(f"lakes:          {Path(facts['lakes']['dev']).parent}/{{dev,stage,prod}}")
    stdout.print(f"build record:   {build['path']}")
    stdout.print(f"test reports:   {report.project}/results/")
    stdout.print(f"try: cd {report.project} && conveyor history prod && conveyor models list --env stage")
