"""`conveyor score-batch`: score a lake dataset with a registered model or a build, locally or on Spark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, say, stdout

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from conveyor.batch import ProgressUnit


class RichProgress:
    """A progress bar on stderr: rows (Parquet), input bytes (CSV) or Spark tasks, with the rate in rows/s."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.unit: ProgressUnit | None = None

    def start(self, total: int | None, unit: ProgressUnit) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from conveyor.batch import ProgressUnit

        if self.bar is not None and self.task is not None and self.unit == unit:
            self.bar.update(self.task, total=total)
            return
        self.finish_bar()
        self.unit = unit
        counted = DownloadColumn() if unit is ProgressUnit.BYTES else MofNCompleteColumn()
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]scoring[/]"),
            BarColumn(),
            counted,
            TextColumn(str(unit) if unit is not ProgressUnit.BYTES else "read"),
            TextColumn("{task.fields[rows]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("score", total=total, rows="")

    def update(self, done: int, rows: int | None = None) -> None:
        if self.bar is not None and self.task is not None:
            if rows is not None and self.unit != "rows":
                self.bar.update(self.task, completed=done, rows=f"{rows:,} rows")
            else:
                self.bar.update(self.task, completed=done)

    def finish(self, rows: int) -> None:
        if self.bar is not None and self.task is not None:
            total = self.bar.tasks[0].total
            self.bar.update(self.task, completed=total if total is not None else rows, rows=f"{rows:,} rows")
        self.finish_bar()

    def finish_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = self.task = None


def score_batch(
    input_path: Annotated[
        str,
        typer.Option("--input", "-i", help="CSV or Parquet file (or folder of them) in the lake.", show_default=False),
    ],
    output_path: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Where in the lake to write the scored rows (a Parquet folder).", show_default=False
        ),
    ],
    env: EnvOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Registered model: NAME, NAME/VERSION or NAME@ALIAS.", show_default=False),
    ] = None,
    build: Annotated[
        str | None,
        typer.Option(
            "--build",
            help="Score with a build instead (build.json, its folder or package digest), verified first.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local (Arrow, in this process) or spark (the environment's compute).")
    ] = "local",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")] = False,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows per record batch handed to score.py.")] = 65_536,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a lake dataset: each row of --input with the model's predictions appended, written to --output.

    The input is CSV or Parquet (a file or a folder of them); the output is a Parquet folder that appears complete
    or not at all. score.py's `run_table(batch)` is handed Arrow record batches (without it, `run_batch` gets lists
    of dicts). `--engine spark` runs on the environment's compute: local mode, spark://HOST:PORT or sc://HOST.

    Example: `conveyor score-batch --env prod --model worst_regression@champion --input AdultCensusIncome.csv
    --output scores/census`
    """
    from conveyor.batch import score_batch as run_job
    from conveyor.batch import score_build
    from conveyor.errors import ConveyorError

    loaded, environment = project_and_env(project, env)
    progress = None if as_json else RichProgress()
    try:
        if build is not None:
            if model is not None:
                raise ConveyorError("--model and --build both name a model", hint="Pass one of them.")
            result = score_build(
                loaded,
                build,
                environment,
                input_path,
                output_path,
                engine=engine,
                overwrite=overwrite,
                progress=progress,
                batch_rows=batch_rows,
            )
        else:
            result = run_job(
                environment,
                input_path,
                output_path,
                model=model,
                engine=engine,
                overwrite=overwrite,
                progress=progress,
                batch_rows=batch_rows,
            )
    finally:
        if progress is not None:
            progress.finish_bar()
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(result.output)
    say(
        f"scored {result.rows:,} rows of {result.input.path} with {result.model['name']}/{result.model['version']} "
        f"({result.engine}, {result.rows_per_second:,.0f} rows/s) into {result.output} in the {result.env} lake"
    )
    drift = result.drift
    if drift is not None and drift.path:
        shifted = sorted(name for name, f in drift.report.features.items() if f.shifted)
        found = f"shifted: {', '.join(shifted)}" if shifted else "no feature shifted (PSI <= 0.2)"
        say(f"drift report {drift.path} ({drift.report.records:,} rows against the training profile; {found})")
    elif drift is not None:
        say(f"drift unavailable: {drift.report.reason}")


COMMANDS = {"score-batch": score_batch}
