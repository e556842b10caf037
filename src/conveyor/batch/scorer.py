"""The columnar contract: a package's score.py applied to Arrow record batches, its predictions appended.

score.py's `run_table(batch)` is called with a `pyarrow.RecordBatch` when it defines one; otherwise the rows go to
`run_batch` as a list of dicts (the server's contract), or to `run` one at a time. Whatever the hook returns is
turned into prediction columns of the batch's length (see the census example's score.py for the contract).
A score.py exception with a `field` attribute (or a 4xx `status_code`) is bad input, as the server treats it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa

from conveyor.batch.errors import BatchInputError, ScoringFailed
from conveyor.serving.loader import ScoreModule, load_and_init
from conveyor.serving.problems import request_error_status

PREDICTION = "prediction"


class ScoringHook(StrEnum):
    """Which entry point of score.py scores a batch, fastest first."""

    RUN_TABLE = "run_table"
    RUN_BATCH = "run_batch"
    RUN = "run"


@dataclass
class TableScorer:
    """A loaded, initialised score.py that scores record batches."""

    package_dir: Path
    loaded: ScoreModule
    hook: ScoringHook
    call: Callable[[pa.RecordBatch], Any]

    def predict(self, batch: pa.RecordBatch, schema: pa.Schema | None = None) -> pa.RecordBatch:
        """The predictions for `batch` as a record batch of its length (cast to `schema` when given)."""
        try:
            result = self.call(batch)
        except Exception as exc:
            raise _model_error(exc, self.hook) from exc
        predictions = prediction_columns(result, batch.num_rows, self.hook)
        if schema is not None:
            predictions = _conform(predictions, schema, self.hook)
        return predictions

    def score(self, batch: pa.RecordBatch, schema: pa.Schema | None = None) -> pa.RecordBatch:
        """`batch` with its predictions appended (cast to `schema`'s prediction fields when given)."""
        return append_columns(batch, self.predict(batch, schema))

    def prediction_schema(self, sample: pa.RecordBatch) -> pa.Schema:
        """The prediction columns' names and types, found by scoring `sample` (a few rows of the input)."""
        return checked_schema(self.predict(sample).schema, sample.schema)


def checked_schema(predictions: pa.Schema, rows: pa.Schema) -> pa.Schema:
    """`predictions`, unless a prediction column would overwrite an input column of the same name."""
    clash = [name for name in predictions.names if name in rows.names]
    if clash:
        raise BatchInputError(
            f"the input already has a column named {clash[0]!r}, which the model writes its prediction to",
            hint=f"Drop or rename {clash[0]!r} in the input (was it scored before?).",
        )
    return predictions


def _records(score: ScoreModule) -> Callable[[pa.RecordBatch], Any]:
    run_batch = score.run_batch
    assert run_batch is not None  # noqa: S101 -- narrows for mypy: called only for the RUN_BATCH hook
    return lambda batch: run_batch(batch.to_pylist())


def _rows(score: ScoreModule) -> Callable[[pa.RecordBatch], Any]:
    run = score.run
    return lambda batch: [run(record) for record in batch.to_pylist()]


def _scorer(package_dir: Path) -> TableScorer:
    score = load_and_init(package_dir)
    run_table = getattr(score.module, "run_table", None)
    if callable(run_table):
        return TableScorer(package_dir, score, ScoringHook.RUN_TABLE, run_table)
    if score.run_batch is not None:
        return TableScorer(package_dir, score, ScoringHook.RUN_BATCH, _records(score))
    return TableScorer(package_dir, score, ScoringHook.RUN, _rows(score))


_loaded: dict[Path, TableScorer] = {}
_lock = threading.Lock()


def load_scorer(package_dir: Path) -> TableScorer:
    """The package's scorer, its `init()` called once per process (a Spark worker reuses it for every task)."""
    key = Path(package_dir).resolve()
    with _lock:
        if key not in _loaded:
            _loaded[key] = _scorer(key)
        return _loaded[key]


def _model_error(exc: Exception, hook: ScoringHook) -> Exception:
    if request_error_status(exc) is not None:
        field = getattr(exc, "field", None)
        named = f" (column {field!r})" if field else ""
        return BatchInputError(
            f"the model refused the input{named}: {exc}",
            hint="Check the input's columns and values against what score.py expects.",
        )
    return ScoringFailed(
        f"score.py's {hook}() raised {type(exc).__name__}: {exc}", hint="Fix score.py or the model; see above."
    )


def prediction_columns(result: Any, rows: int, hook: ScoringHook) -> pa.RecordBatch:
    """What a scoring hook returned, as a record batch of `rows` rows (or `ScoringFailed` saying why not)."""
    if isinstance(result, pa.Table):
        result = pa.RecordBatch.from_arrays([c.combine_chunks() for c in result.columns], names=result.schema.names)
    if isinstance(result, pa.RecordBatch):
        batch = result
    elif isinstance(result, Mapping):
        batch = pa.RecordBatch.from_pydict({str(name): _array(values, name, hook) for name, values in result.items()})
    elif isinstance(result, list) and result and all(isinstance(item, Mapping) for item in result):
        batch = pa.RecordBatch.from_pylist(result)
    else:
        batch = pa.RecordBatch.from_pydict({PREDICTION: _array(result, PREDICTION, hook)})
    if batch.num_columns == 0:
        raise ScoringFailed(f"score.py's {hook}() returned no prediction columns", hint="Return at least one column.")
    if batch.num_rows != rows:
        raise ScoringFailed(
            f"score.py's {hook}() returned {batch.num_rows} predictions for {rows} rows",
            hint="Return exactly one prediction per row, in row order.",
        )
    return batch


def _array(values: Any, name: Any, hook: ScoringHook) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise ScoringFailed(
            f"score.py's {hook}() returned column {name!r} that is not a column of values: {exc}",
            hint="Return numpy arrays, pyarrow arrays or lists of scalars.",
        ) from None


def _conform(predictions: pa.RecordBatch, schema: pa.Schema, hook: ScoringHook) -> pa.RecordBatch:
    """`predictions` with the columns and types of `schema` (as found on the first batch)."""
    if predictions.schema.names != schema.names:
        raise ScoringFailed(
            f"score.py's {hook}() returned columns {predictions.schema.names}, earlier {schema.names}",
            hint="Return the same prediction columns for every batch.",
        )
    if predictions.schema.equals(schema):
        return predictions
    try:
        return predictions.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ScoringFailed(
            f"score.py's {hook}() returned predictions of types {predictions.schema.types}, earlier {schema.types}: "
            f"{exc}",
            hint="Return predictions of the same type for every batch.",
        ) from None


def append_columns(batch: pa.RecordBatch, predictions: pa.RecordBatch) -> pa.RecordBatch:
    """The input rows with the prediction columns after them."""
    arrays = [*batch.columns, *predictions.columns]
    names = [*batch.schema.names, *predictions.schema.names]
    return pa.RecordBatch.from_arrays(arrays, names=names)
