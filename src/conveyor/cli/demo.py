"""`conveyor demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.options import JsonOption
from conveyor.cli.output import console, emit_json, stdout


def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to put the demo (default: a new temporary folder).")
    ] = None,
    rows: Annotated[int, typer.Option(min=50, help="Rows of sample census data per environment.")] = 5000,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave the QA and prod scoring servers running afterwards.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run conveyor's main job end to end on embedded defaults (no cloud account needed).

    In a new project: scaffold the census example with private secret files, a local data lake per environment
    and a sealed evaluation set of the gate step's own; make SSH keys for the people it plays (ci the builder,
    alice who requests, bob who approves, mallory who is not in allowed_signers); train in dev and in stage
    (each its own MLflow registry); build the stage model's package and OCI image; run the project's tests
    inside that image; check the quality gates inside it on the sealed set; release to QA; promote to prod,
    where alice's own approval and mallory's are refused and bob's deploys the exact tested image digest;
    score a request against prod; verify every signed event of the ledger.
    """
    from conveyor.demo import run_demo

    report = run_demo(console, directory, rows, keep_running=keep_running)
    if as_json:
        emit_json(report.to_dict())
        return
    dev, stage, shipped = report.dev_model, report.stage_model, report.shipped
    assert dev is not None and stage is not None and shipped is not None  # noqa: S101 -- narrows for mypy: a finished demo's report holds all three
    from rich.table import Table

    table = Table(title=f"{dev.name} version {dev.version} in dev", show_header=True)
    table.add_column("tag")
    table.add_column("value", overflow="fold")
    for key, value in sorted(dev.tags.items()):
        table.add_row(key, value)
    stdout.print(table)
    stdout.print(
        f"stage registry: {stage.name} version {stage.version} (trained in {stage.tags.get('state')}); "
        f"dev registry still holds versions {report.dev_versions_after_stage}"
    )
    tests = shipped.tests
    stdout.print(f"package digest: {shipped.digest}")
    stdout.print(f"image digest:   {shipped.image_digest or 'none (no container engine)'}")
    cover = f", coverage {tests['coverage_percent']}%" if tests.get("coverage_percent") is not None else ""
    stdout.print(f"tests:          {tests['passed']} passed, {tests['failed']} failed{cover}, ran in {tests['ran_in']}")
    gates = ", ".join(
        f"{g['metric']}={g['value']:.4g} ({g['rule']}: {'pass' if g['passed'] else 'FAIL'}"
        f"{', no champion in prod yet' if 'champion' in g['rule'] and g.get('champion') is None else ''})"
        for g in shipped.gates["results"]
    )
    stdout.print(f"gates:          {gates}")
    stdout.print(f"qa release:     #{shipped.qa['id']} {shipped.qa['status']}")
    stdout.print(
        f"prod release:   #{shipped.prod['id']} {shipped.prod['status']}, requested by "
        f"{shipped.prod['requested_by']}, approved by {', '.join(shipped.prod.get('approved_by') or [])}"
    )
    stdout.print(f"refused:        {shipped.refused}")
    stdout.print(f"refused:        {shipped.outsider_refused}")
    stdout.print(f"prod answered:  {shipped.prod_answer['response']} for {shipped.prod_answer['request']}")
    batch = shipped.batch
    stdout.print(
        f"prod batch:     {batch['rows']:,} rows of {batch['input']['path']} scored into "
        f"{batch['output']['path']} ({batch['rows_per_second']:,.0f} rows/s)"
    )
    stdout.print(
        f"ledger:         {shipped.ledger_events} signed events verified, checkpoint "
        f"{shipped.ledger_events}:{shipped.ledger_head[:16]}"
    )
    stdout.print(f"project:        {report.project}")
    stdout.print(f"keys:           {report.keys} (ci, alice, bob in the project's allowed_signers; mallory not)")
    stdout.print(f"secrets:        {report.secrets} (one private file per environment, and the gate store's)")
    stdout.print(f"lakes:          {Path(report.lakes['dev']).parent}/{{dev,stage,prod}}")
    stdout.print(f"build record:   {shipped.path}")
    stdout.print(f"test reports:   {report.project}/results/")
    stdout.print(
        f"try: cd {report.project} && conveyor history prod && conveyor releases show {shipped.prod['id']} "
        "&& conveyor models list --env stage && conveyor lake ls scored --env prod"
    )
    stdout.print(f"see:            conveyor ui -p {report.project}  (the release line at http://127.0.0.1:8765)")
