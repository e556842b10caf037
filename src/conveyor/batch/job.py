"""`score_batch`: score a lake dataset with a packaged model and write the rows with their predictions as Parquet.

`conveyor score-batch` calls exactly this; so do the build pipeline's scoring step and the `batch://` release
target (through `score_build`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

from conveyor.batch.datasets import InputDataset, find_input
from conveyor.batch.drift import BatchDrift, write_batch_drift
from conveyor.batch.engines import DEFAULT_BATCH_ROWS, BatchEngine, BatchJob, engine_for
from conveyor.batch.output import plan_output, staged
from conveyor.batch.progress import BatchProgress, NoProgress
from conveyor.errors import ConveyorError
from conveyor.serving.loader import check_package_dir, read_package_info

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Environment, Project

PACKAGES_DIR = "packages"


@dataclass(frozen=True)
class BatchResult:
    """What a batch job did: which model scored which input into which output, how many rows, how fast."""

    env: str
    engine: BatchEngine
    model: dict[str, str]
    package_dir: Path
    input: InputDataset
    input_files: list[dict[str, str]]
    output: str
    output_files: list[str]
    rows: int
    predictions: tuple[str, ...]
    seconds: float
    details: dict[str, str] = field(default_factory=dict)
    drift: BatchDrift | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "env": self.env,
            "engine": str(self.engine),
            "model": dict(self.model),
            "package": str(self.package_dir),
            "input": {**self.input.to_dict(), "files": self.input_files},
            "output": {"path": self.output, "format": "parquet", "files": self.output_files},
            "rows": self.rows,
            "predictions": list(self.predictions),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "details": dict(self.details),
            "drift": self.drift.to_dict() if self.drift else None,
        }


def model_package(environment: Environment, model: str | None = None, package: Path | None = None) -> Path:
    """The package directory to score with: a registered model (`NAME[/VERSION|@ALIAS]`, materialised from the
    environment's registry) or a package directory (a build's `package/`)."""
    if (model is None) == (package is None):
        raise ConveyorError(
            "name the model to score with: a registered model or a built package (one of them)",
            hint="Pass --model NAME, NAME/VERSION or NAME@ALIAS, or --build BUILD.",
        )
    if package is not None:
        return check_package_dir(package)
    from conveyor.registry import materialize

    assert model is not None  # noqa: S101 -- narrows for mypy: exactly one of model and package was checked above
    return check_package_dir(materialize(model, environment, environment.project.state_dir / PACKAGES_DIR))


def score_batch(
    environment: Environment,
    input_path: str,
    output_path: str,
    *,
    model: str | None = None,
    package: Path | None = None,
    engine: BatchEngine | str = BatchEngine.LOCAL,
    overwrite: bool = False,
    progress: BatchProgress | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> BatchResult:
    """Score the lake dataset at `input_path` (CSV or Parquet, a file or a folder) with a registered `model` or a
    package directory, and write its rows with the predictions appended to `output_path` as a Parquet folder.
    When the package holds a training profile, the input's drift report is written beside it
    (`OUTPUT.drift.json`, see `conveyor.batch.drift`); `result.drift` says which, or why there is none.

    The output appears complete or not at all; an existing output is replaced only with `overwrite`.
    """
    chosen = engine if isinstance(engine, BatchEngine) else BatchEngine.named(engine)
    if batch_rows < 1:
        raise ConveyorError(f"batch size must be at least 1 row, not {batch_rows}")
    lake = environment.lake()
    lake.env = lake.env or environment.name
    dataset = find_input(lake, input_path)
    output = plan_output(lake, output_path, overwrite, dataset)
    package_dir = model_package(environment, model, package)
    info = read_package_info(package_dir)
    started = perf_counter()
    with staged(output):
        job = BatchJob(environment, lake, package_dir, dataset, output, batch_rows)
        run = engine_for(chosen).run(job, progress or NoProgress())
        files = output.commit()
    seconds = perf_counter() - started
    read = [{"path": r.path, "sha256": r.sha256} for r in lake.reads() if r.path in dataset.files]
    described = {"name": info.name, "version": info.version, "digest": info.digest}
    drift = write_batch_drift(lake, dataset, package_dir, output.path, described)
    return BatchResult(
        env=environment.name,
        engine=chosen,
        model={"name": info.name, "version": info.version},
        package_dir=package_dir,
        input=dataset,
        input_files=read,
        output=output.path,
        output_files=files,
        rows=run.rows,
        predictions=run.predictions,
        seconds=seconds,
        details=run.details,
        drift=drift,
    )


def score_build(
    project: Project,
    build: str | Path,
    environment: Environment,
    input_path: str,
    output_path: str,
    *,
    engine: BatchEngine | str = BatchEngine.LOCAL,
    overwrite: bool = False,
    progress: BatchProgress | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> BatchResult:
    """`score_batch` with a build's package (build.json path, its folder, or a package digest), after checking
    that the package is still exactly what was built (and tested)."""
    from conveyor.package import check_package, find_build

    record = find_build(project.state_dir, str(build))
    check_package(record.package_dir, record.digest)
    return score_batch(
        environment,
        input_path,
        output_path,
        package=record.package_dir,
        engine=engine,
        overwrite=overwrite,
        progress=progress,
        batch_rows=batch_rows,
    )
