"""Input datasets in a lake: a CSV or Parquet file, or a folder of them, read as a stream of Arrow record batches.

CSV follows the public census file's dialect as the training script reads it: a header line, `,` between fields
with any spaces after it dropped (pandas' `skipinitialspace`, Spark's `ignoreLeadingWhiteSpace`), column types
inferred from the first block. Parquet keeps its own types. In a folder, names starting with `_` or `.` (Spark's
`_SUCCESS`, checksum files) are skipped, as Spark skips them.
"""

from __future__ import annotations

import os
import posixpath
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from conveyor.batch.errors import BatchInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conveyor.lake import Lake

CSV_BLOCK_BYTES = 4 << 20


class DatasetFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


SUFFIXES = {".csv": DatasetFormat.CSV, ".parquet": DatasetFormat.PARQUET, ".pq": DatasetFormat.PARQUET}
ACCEPTED = "CSV (.csv) or Parquet (.parquet, .pq) files, or a folder of them"


@dataclass(frozen=True)
class InputDataset:
    """The files of an input path inside a lake, their format, total size and (for Parquet) row count."""

    path: str
    format: DatasetFormat
    files: tuple[str, ...]
    bytes: int
    rows: int | None

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "format": str(self.format), "files": list(self.files), "bytes": self.bytes}


def _format_of(name: str) -> DatasetFormat | None:
    return SUFFIXES.get(posixpath.splitext(name)[1].lower())


def hidden(name: str, root: str) -> bool:
    """Whether Spark and Hadoop skip `name` inside folder `root`: a part of its path starts with `_` or `.`
    (`_SUCCESS`, `.crc` checksums, `_temporary/`, staging folders)."""
    relative = posixpath.relpath(name, root) if root else name
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def find_input(lake: Lake, path: str) -> InputDataset:
    """The dataset at lake path `path`, or a `LakeError`/`BatchInputError` naming what is wrong and the fix."""
    inside = lake.path(path)
    info = lake.info(inside)  # a missing path raises LakePathMissing, which names it and what is there
    if info.get("type") == "directory":
        files = sorted(lake.path(name) for name in lake.find(inside) if not hidden(lake.path(name), inside))
        if not files:
            raise BatchInputError(
                f"the input folder {inside!r} holds no data files", hint=f"score-batch reads {ACCEPTED}."
            )
        formats = {_format_of(name) for name in files}
        if len(formats) != 1 or None in formats:
            odd = next((n for n in files if _format_of(n) is None), files[0])
            raise BatchInputError(
                f"the input folder {inside!r} mixes formats or holds files of unknown format (e.g. {odd!r})",
                hint=f"score-batch reads {ACCEPTED}; a folder must hold one format.",
            )
        sizes = sum(int(lake.info(name).get("size") or 0) for name in files)
    else:
        files, sizes = [inside], int(info.get("size") or 0)
    found = _format_of(files[0])
    if found is None:
        raise BatchInputError(f"cannot tell the format of the input {inside!r}", hint=f"score-batch reads {ACCEPTED}.")
    rows = None
    if found is DatasetFormat.PARQUET:
        rows = 0
        for name in files:
            with open_parquet(lake, name) as parquet:
                rows += parquet.metadata.num_rows
    return InputDataset(inside, found, tuple(files), sizes, rows)


def local_path(lake: Lake, name: str) -> str | None:
    """The native path of lake file `name` when the lake is on a local disk (faster to read and write)."""
    return os.path.join(lake.location.root, lake.path(name)) if lake.location.is_local else None


@contextmanager
def open_file(lake: Lake, name: str) -> Iterator[Any]:
    """Lake file `name` opened for pyarrow: natively on local lakes (its read recorded), else a logged fsspec file."""
    native = local_path(lake, name)
    if native is not None:
        lake.record_read(name)
        handle: Any = pa.OSFile(native, "rb")
    else:
        handle = lake.open(name, "rb")
    with handle:
        yield handle


@contextmanager
def open_parquet(lake: Lake, name: str) -> Iterator[pq.ParquetFile]:
    with open_file(lake, name) as handle:
        try:
            parquet = pq.ParquetFile(handle, pre_buffer=False)  # pre-buffering would hold the whole file
        except (pa.ArrowInvalid, OSError) as exc:
            raise BatchInputError(
                f"{name!r} is not a readable Parquet file: {exc}", hint=f"score-batch reads {ACCEPTED}."
            ) from None
        yield parquet


def _csv_options(block_bytes: int) -> tuple[pcsv.ReadOptions, pcsv.ParseOptions, pcsv.ConvertOptions]:
    return (
        pcsv.ReadOptions(block_size=block_bytes, use_threads=True),
        pcsv.ParseOptions(delimiter=","),
        pcsv.ConvertOptions(strings_can_be_null=False),
    )


def tidy_csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Names stripped, and text values without the spaces after each `,` (the census file's `, `)."""
    arrays = [
        pc.utf8_ltrim_whitespace(column) if pa.types.is_string(column.type) else column for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=[name.strip() for name in batch.schema.names])


def _csv_batches(handle: Any, name: str, rows: int, block_bytes: int) -> Iterator[pa.RecordBatch]:
    read, parse, convert = _csv_options(block_bytes)
    try:
        reader = pcsv.open_csv(handle, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            for start in range(0, batch.num_rows, rows):
                yield tidy_csv_batch(batch.slice(start, rows))
    except pa.ArrowInvalid as exc:
        raise BatchInputError(
            f"cannot read {name!r} as CSV: {exc}",
            hint="Column types are inferred from the first block; convert the file to Parquet to fix them.",
        ) from None


def iter_batches(
    lake: Lake,
    dataset: InputDataset,
    rows: int,
    on_bytes: Callable[[int], None] | None = None,
    block_bytes: int = CSV_BLOCK_BYTES,
) -> Iterator[pa.RecordBatch]:
    """The dataset's rows in record batches of at most `rows` rows, read one batch at a time (bounded memory).

    `on_bytes(total)` is told the input bytes read so far after each CSV batch.
    """
    read_before = 0
    for name in dataset.files:
        if dataset.format is DatasetFormat.PARQUET:
            with open_parquet(lake, name) as parquet:
                yield from parquet.iter_batches(batch_size=rows)
            continue
        with open_file(lake, name) as handle:
            for batch in _csv_batches(handle, name, rows, block_bytes):
                yield batch
                if on_bytes is not None:
                    on_bytes(read_before + handle.tell())
        read_before += int(lake.info(name).get("size") or 0)


def read_sample(lake: Lake, dataset: InputDataset, rows: int) -> pa.RecordBatch:
    """The dataset's first rows (at most `rows`), with the schema every later batch has."""
    for batch in iter_batches(lake, dataset, rows, block_bytes=1 << 20):
        return batch
    return _empty(lake, dataset)


def _empty(lake: Lake, dataset: InputDataset) -> pa.RecordBatch:
    if dataset.format is DatasetFormat.PARQUET:
        with open_parquet(lake, dataset.files[0]) as parquet:
            schema = parquet.schema_arrow
        return pa.RecordBatch.from_pylist([], schema=schema)
    raise BatchInputError(f"the input {dataset.path!r} holds no rows", hint="Score a dataset with a header and rows.")
