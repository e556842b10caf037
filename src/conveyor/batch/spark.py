"""The Spark engine: the input read by Spark, each partition scored by score.py in `mapInArrow`, written as Parquet.

The package travels to the executors as a zip archive (`SparkSession.addArtifacts(..., archive=True)`, which
Spark Classic and Spark Connect both take); each Python worker unpacks nothing itself, loads score.py from the
unpacked archive through the serving loader and calls `init()` once. Executors need what the driver needs to
score (conveyor, pyarrow, numpy and the model's own requirements); a local or loopback cluster shares this
Python (`PYSPARK_PYTHON`). The prediction columns' types are found on the driver by scoring the input's first
rows, so the output schema is known before the job starts.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.batch.datasets import DatasetFormat, hidden, read_sample
from conveyor.batch.engines import BatchJob, EngineRun
from conveyor.batch.errors import BatchInputError, ScoringFailed
from conveyor.batch.progress import BatchProgress, ProgressUnit
from conveyor.batch.scorer import load_scorer
from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from collections.abc import Iterator

ARCHIVES_DIR = "batch-archives"
SAMPLE_ROWS = 1_000
SKIPPED = ("__pycache__", ".complete")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def package_archive(package_dir: Path, cache_dir: Path) -> Path:
    """The package folder as a reproducible zip named by its content, `conveyor-package-<sha256[:16]>.zip`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package_dir.rglob("*")):
            relative = path.relative_to(package_dir)
            if not path.is_file() or any(p in SKIPPED for p in relative.parts) or path.suffix == ".pyc":
                continue
            entry = zipfile.ZipInfo(relative.as_posix(), FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    data = buffer.getvalue()
    target = cache_dir / f"conveyor-package-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(target)
    return target


def spark_session(job: BatchJob) -> Any:
    """The environment's SparkSession (local mode for `compute = "local"`), its Python workers on this Python."""
    from conveyor.compute import spark_session as environment_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        return environment_session(job.environment)
    except ConveyorError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot start Spark for the {job.environment.name} environment ({job.environment.compute}): {exc}",
            hint="Check the environment's compute setting and that Java is installed (scripts/install-system-deps.sh).",
        ) from None


def is_connect(spark: Any) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


_shipped: set[tuple[str, str]] = set()


def session_id(spark: Any) -> str:
    """What names a session for as long as it lives: its Connect session id, or its application's id."""
    return str(spark.session_id if is_connect(spark) else spark.sparkContext.applicationId)


def ship(spark: Any, archive: Path) -> None:
    """Send the archive to the executors once per session (unpacked there under its own name)."""
    key = (session_id(spark), archive.name)
    if key not in _shipped:
        spark.addArtifacts(str(archive), archive=True)
        _shipped.add(key)


@dataclass(frozen=True)
class PartitionScorer:
    """What `mapInArrow` runs on each partition: the shipped package's score.py over its record batches."""

    archive: str
    predictions: pa.Schema

    def package_dir(self) -> Path:
        from pyspark import SparkFiles

        return Path(SparkFiles.get(self.archive))

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        scorer = load_scorer(self.package_dir())
        for batch in batches:
            yield scorer.score(batch, self.predictions)


def _read(spark: Any, job: BatchJob, sample: pa.RecordBatch) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    urls = [job.lake.url_of(name) for name in job.dataset.files]
    for name in job.dataset.files:
        job.lake.record_read(name)
    if job.dataset.format is DatasetFormat.PARQUET:
        return spark.read.parquet(*urls)
    return (
        spark.read.schema(from_arrow_schema(sample.schema))
        .option("header", True)
        .option("ignoreLeadingWhiteSpace", True)
        .option("mode", "FAILFAST")
        .csv(urls)
    )


class _ProgressWatch:
    """Reports finished Spark tasks: polls the status tracker (Classic) or listens to progress (Connect)."""

    def __init__(self, spark: Any, progress: BatchProgress) -> None:
        self.spark, self.progress = spark, progress
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _connect(self, stages: Any, inflight_tasks: int, operation_id: str | None, done: bool) -> None:
        stages = list(stages or [])
        total = sum(s.num_tasks for s in stages)
        if total:
            self.progress.start(total, ProgressUnit.TASKS)
            self.progress.update(sum(s.num_completed_tasks for s in stages))

    def _poll(self) -> None:
        tracker = self.spark.sparkContext.statusTracker()
        started = False
        while not self.stop.wait(0.25):
            stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
            total = sum(s.numTasks for s in stages if s is not None)
            if total:
                if not started:
                    self.progress.start(total, ProgressUnit.TASKS)
                    started = True
                self.progress.update(sum(s.numCompletedTasks for s in stages if s is not None))

    def __enter__(self) -> _ProgressWatch:
        self.progress.start(None, ProgressUnit.TASKS)
        if is_connect(self.spark):
            self.spark.registerProgressHandler(self._connect)
        else:
            self.thread = threading.Thread(target=self._poll, name="spark-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if is_connect(self.spark):
            self.spark.removeProgressHandler(self._connect)
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


ERROR_LINE = re.compile(r"(BatchInputError|ScoringFailed): (.+)")


def _job_error(exc: Exception) -> ConveyorError:
    """A failed Spark job as a conveyor error: score.py's own error when an executor raised one."""
    text = str(exc)
    found = ERROR_LINE.findall(text)
    if found:
        kind, message = found[-1]
        error = BatchInputError if kind == "BatchInputError" else ScoringFailed
        return error(message.strip(), hint="Raised on a Spark executor while scoring; see its log for the row range.")
    if "Malformed" in text or "FAILFAST" in text:
        return BatchInputError(
            "Spark could not parse the input with the column types of its first rows",
            hint="Column types are inferred from the first rows; convert the input to Parquet to fix them.",
        )
    lines = [line for line in text.splitlines() if line.strip()]
    summary = next((line for line in lines if "Error" in line or "Exception" in line), lines[0] if lines else "")
    return ScoringFailed(f"the Spark job failed: {summary.strip()[:500]}", hint="See the Spark log above.")


def _rows_written(job: BatchJob) -> int:
    fs = job.lake.fs
    names = [
        n
        for n in fs.find(job.output.staging)
        if n.endswith(".parquet") and not hidden(job.lake.path(n), job.output.staging)
    ]
    total = 0
    for name in names:
        with fs.open(name, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


class SparkEngine:
    """Scores on the environment's Spark: local mode, a standalone cluster or Spark Connect."""

    def run(self, job: BatchJob, progress: BatchProgress) -> EngineRun:
        try:
            from pyspark.sql.pandas.types import from_arrow_schema
            from pyspark.sql.types import StructType
        except ImportError:
            raise ConfigError(
                "--engine spark needs PySpark, which is not installed",
                hint="Install it with: pip install 'conveyor[spark]' (or score with --engine local).",
            ) from None

        sample = read_sample(job.lake, job.dataset, SAMPLE_ROWS)
        predictions = load_scorer(job.package_dir).prediction_schema(sample)
        archive = package_archive(job.package_dir, job.environment.project.state_dir / ARCHIVES_DIR)
        spark = spark_session(job)
        ship(spark, archive)
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(job.batch_rows))
        frame = _read(spark, job, sample)
        clash = [name for name in predictions.names if name in frame.columns]
        if clash:
            raise BatchInputError(f"the input already has a column named {clash[0]!r}", hint="Drop or rename it.")
        schema = StructType([*frame.schema.fields, *from_arrow_schema(predictions).fields])
        scored = frame.mapInArrow(PartitionScorer(archive.name, predictions), schema)
        try:
            with _ProgressWatch(spark, progress):
                scored.write.parquet(job.output.url)
        except ConveyorError:
            raise
        except Exception as exc:
            raise _job_error(exc) from None
        rows = _rows_written(job)
        progress.finish(rows)
        master = "connect" if is_connect(spark) else str(spark.sparkContext.master)
        return EngineRun(rows, tuple(predictions.names), {"spark": master, "archive": archive.name})
