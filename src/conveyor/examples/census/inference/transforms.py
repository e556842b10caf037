"""Request parsing and response shaping, kept apart from the model so each is testable alone."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

NUMERIC_FIELDS = ("age", "hours-per-week")
TEXT_FIELDS = ("sex", "occupation")


class RequestError(ValueError):
    """A request that does not match the model's input; `field` names the offending field."""

    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def parse_request(raw: Any) -> tuple[float, float]:
    """`{"age": 37, "hours-per-week": 40.0, ...}` (text, bytes or dict) → (age, hours-per-week)."""
    if isinstance(raw, bytes | bytearray | str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise RequestError(f"request is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RequestError(f"request must be a JSON object, not {type(raw).__name__}")
    values = []
    for field in NUMERIC_FIELDS:
        if field not in raw:
            raise RequestError(f"missing field {field!r}", field)
        value = raw[field]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"field {field!r} must be a number, got {type(value).__name__}", field)
        if not math.isfinite(value) or value < 0:
            raise RequestError(f"field {field!r} must be a finite non-negative number", field)
        values.append(float(value))
    for field in TEXT_FIELDS:
        if field in raw and not isinstance(raw[field], str):
            raise RequestError(f"field {field!r} must be a string, got {type(raw[field]).__name__}", field)
    return values[0], values[1]


def parse_columns(batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """The numeric features of a table (a pyarrow RecordBatch or Table) as float64 arrays: (age, hours-per-week).

    The same rules as `parse_request`, applied to whole columns; the first column breaking them is named.
    """
    names = list(batch.schema.names)
    columns = []
    for field in NUMERIC_FIELDS:
        if field not in names:
            raise RequestError(f"missing column {field!r} (the table has: {', '.join(names)})", field)
        column = batch.column(field)
        if column.null_count:
            raise RequestError(f"column {field!r} has {column.null_count} empty values", field)
        values = np.asarray(column.to_numpy(zero_copy_only=False))
        if values.dtype.kind not in "iuf":
            raise RequestError(f"column {field!r} must be numeric, not {column.type}", field)
        values = values.astype(np.float64, copy=False)
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise RequestError(f"column {field!r} must hold finite non-negative numbers", field)
        columns.append(values)
    return columns[0], columns[1]


def to_response(estimated_wages: float) -> dict[str, float]:
    return {"estimated_wages": float(estimated_wages)}
