"""The local engine: Arrow record batches streamed from the input through score.py into one Parquet file.

Memory stays bounded by one batch (and one Parquet row group of the input), however many rows there are.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.batch.datasets import DatasetFormat, iter_batches, read_sample
from conveyor.batch.engines import BatchJob, EngineRun
from conveyor.batch.progress import BatchProgress, ProgressUnit
from conveyor.batch.scorer import append_columns, checked_schema, load_scorer


class LocalEngine:
    """Scores in this process, one record batch at a time."""

    def run(self, job: BatchJob, progress: BatchProgress) -> EngineRun:
        scorer = load_scorer(job.package_dir)
        dataset = job.dataset
        by_rows = dataset.format is DatasetFormat.PARQUET
        progress.start(dataset.rows if by_rows else dataset.bytes, ProgressUnit.ROWS if by_rows else ProgressUnit.BYTES)
        rows = read = 0

        def on_bytes(total: int) -> None:
            nonlocal read
            read = total

        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        sink = _Sink(job)
        try:
            batches = iter_batches(job.lake, dataset, job.batch_rows, on_bytes=on_bytes)
            for batch in batches:
                predictions = scorer.predict(batch, schema)
                if schema is None:  # the first batch's predictions fix the columns and types of all
                    schema = checked_schema(predictions.schema, batch.schema)
                scored = append_columns(batch, predictions)
                if writer is None:
                    writer = pq.ParquetWriter(sink.open(), scored.schema, compression="snappy")
                writer.write_batch(scored)
                rows += batch.num_rows
                progress.update(rows if by_rows else read, rows)
            if writer is None:  # no rows: the output still has the input's columns and the predictions'
                empty = read_sample(job.lake, dataset, 1)
                schema = scorer.prediction_schema(empty)
                scored = scorer.score(empty, schema)
                writer = pq.ParquetWriter(sink.open(), scored.schema, compression="snappy")
                writer.write_batch(scored)
        finally:
            if writer is not None:
                writer.close()
            sink.close()
        progress.finish(rows)
        assert schema is not None  # noqa: S101 -- narrows for mypy: the first batch set the schema
        return EngineRun(rows, tuple(schema.names), {"hook": str(scorer.hook), "batch_rows": str(job.batch_rows)})


class _Sink:
    """The staging folder's one data file: a native file on local lakes, else a file of the lake's filesystem."""

    def __init__(self, job: BatchJob) -> None:
        self.job = job
        self.handle: Any = None

    def open(self) -> Any:
        output = self.job.output
        name = output.part(0)
        native = output.native(name)
        if native is not None:
            os.makedirs(os.path.dirname(native), exist_ok=True)
            self.handle = pa.OSFile(native, "wb")
        else:
            self.handle = self.job.lake.fs.open(name, "wb")
        return self.handle

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
