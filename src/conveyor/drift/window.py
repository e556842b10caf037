"""`DriftWindow`: the last `capacity` live values of every profiled feature, in fixed-size ring buffers.

Memory is fixed when the window is made: 8 bytes per value of a numeric feature (float64, NaN for null), 2 per
value of a categorical one (int16 codes into the profile's categories), so 10,000 records of the census profile's
two numeric features take 160 KB, whatever is fed. Records are taken a batch at a time, a column at a time with
numpy; the report is computed only when asked for (`report()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.drift.profile import NUMERIC, OTHER, FeatureProfile, TrainingProfile
from conveyor.drift.report import DriftReport, FeatureDrift, categorical_drift, numeric_drift

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_CAPACITY = 10_000
NULL_CODE = -1


def _float_or_nan(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    return float("nan")


def floats(values: Sequence[Any]) -> np.ndarray:
    """Live values of a numeric feature as float64, NaN for null and for what is not a number."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.fromiter(map(_float_or_nan, values), np.float64, len(values))
    return array if array.ndim == 1 else np.full(len(values), np.nan)


class _CategoryCodes:
    """Category → code in the profile's categories: the other categories share OTHER's code; null is NULL_CODE."""

    def __init__(self, feature: FeatureProfile) -> None:
        names = [name for name, _ in feature.categories]
        self.other = names.index(OTHER)
        self.index = {name: code for code, name in enumerate(names) if name != OTHER}

    def code(self, value: Any) -> int:
        if value is None or (type(value) is float and value != value):
            return NULL_CODE
        return self.index.get(value if type(value) is str else str(value), self.other)

    def codes(self, values: Sequence[Any]) -> np.ndarray:
        return np.fromiter(map(self.code, values), np.int16, len(values))


def _column_values(column: Any, numeric: bool) -> np.ndarray | list[Any]:
    """A column of a table (pyarrow, pandas, numpy or a list) as a float array (numeric) or a list of values."""
    if hasattr(column, "to_pylist"):  # pyarrow
        if numeric:
            try:
                return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            except (TypeError, ValueError):
                return floats(column.to_pylist())
        return list(column.to_pylist())
    if numeric:
        try:
            return np.asarray(column, dtype=np.float64)
        except (TypeError, ValueError):
            return floats(list(column))
    return list(column)


class DriftWindow:
    """The last `capacity` records' values of each feature of `profile`, compared with it on `report()`.

    Every record fills one slot of every feature (a feature it lacks is null), so all buffers stay aligned.
    Not thread-safe: feed and read it from one thread (the server's event loop).
    """

    def __init__(self, profile: TrainingProfile, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a drift window holds at least 1 record, not {capacity}")
        self.profile = profile
        self.capacity = capacity
        self._numeric = {n: f for n, f in profile.features.items() if f.kind == NUMERIC}
        self._categorical = {n: _CategoryCodes(f) for n, f in profile.features.items() if f.kind != NUMERIC}
        self._buffers: dict[str, np.ndarray] = {name: np.full(capacity, np.nan) for name in self._numeric}
        self._buffers.update({name: np.full(capacity, NULL_CODE, np.int16) for name in self._categorical})
        self._position = 0  # next slot to write
        self._filled = 0
        self.seen = 0  # records fed in all

    @property
    def records(self) -> int:
        """Records in the window now (at most `capacity`)."""
        return self._filled

    @property
    def nbytes(self) -> int:
        """Bytes the ring buffers hold: fixed at creation."""
        return sum(buffer.nbytes for buffer in self._buffers.values())

    def add_records(self, records: Sequence[object]) -> None:
        """Feed scored records (dicts of feature → value; records of another shape are left out)."""
        rows = [r for r in records[-self.capacity :] if type(r) is dict]
        if not rows:
            return
        columns: dict[str, np.ndarray] = {}
        for name in self._numeric:
            columns[name] = floats([row.get(name) for row in rows])
        for name, codes in self._categorical.items():
            columns[name] = codes.codes([row.get(name) for row in rows])
        self._write(columns, len(rows))

    def add_columns(self, columns: Mapping[str, object], rows: int) -> None:
        """Feed a table of `rows` rows by column (pyarrow RecordBatch columns, pandas Series, arrays or lists)."""
        if rows <= 0:
            return
        start = max(0, rows - self.capacity)
        arrays: dict[str, np.ndarray] = {}
        for name in self._numeric:
            column = columns.get(name)
            arrays[name] = (
                np.full(rows, np.nan) if column is None else np.asarray(_column_values(column, True), dtype=np.float64)
            )[start:]
        for name, codes in self._categorical.items():
            column = columns.get(name)
            values = [None] * rows if column is None else _column_values(column, False)
            arrays[name] = codes.codes(list(values[start:]))
        self._write(arrays, rows - start)

    def _write(self, columns: dict[str, np.ndarray], count: int) -> None:
        position, capacity = self._position, self.capacity
        first = min(count, capacity - position)
        for name, values in columns.items():
            buffer = self._buffers[name]
            buffer[position : position + first] = values[:first]
            if count > first:
                buffer[: count - first] = values[first:]
        self._position = (position + count) % capacity
        self._filled = min(capacity, self._filled + count)
        self.seen += count

    def values(self, feature: str) -> np.ndarray:
        """The feature's values in the window (oldest first is not promised: drift ignores order)."""
        return self._buffers[feature][: self._filled] if self._filled < self.capacity else self._buffers[feature]

    def report(self) -> DriftReport:
        """PSI (and KS for numeric features) of every profiled feature over the records in the window."""
        features: dict[str, FeatureDrift] = {}
        if self._filled:
            for name, feature in self._numeric.items():
                features[name] = numeric_drift(feature, self.values(name))
            for name in self._categorical:
                features[name] = categorical_drift(self.profile.features[name], self.values(name))
        return DriftReport(True, self._filled, features)
