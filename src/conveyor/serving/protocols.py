"""Payloads of the protocols existing clients speak, turned into a list of records and back.

- Open Inference Protocol v2 (KServe, Triton, Seldon): named input tensors, first dimension = records.
- MLflow scoring server `/invocations`: `dataframe_records`, `dataframe_split`, `instances`, `inputs`; CSV with a
  header row (`text/csv`), and the bare pandas orients `application/json; format=pandas-split|pandas-records`.

A record is what score.py's `run()` receives for one request, as JSON text (as on `/score`). Every check names the
field at fault (`inputs[0].shape`), and no request makes more than `max_records` records: a shape is checked
before anything is built from it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from conveyor.serving.problems import bad_payload, too_many_records

V2_DATATYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}
MAX_DIMENSIONS = 32
MLFLOW_KEYS = ("dataframe_records", "dataframe_split", "instances", "inputs")


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major flattening of nested lists, without recursion."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if type(value) is list:
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _rows(field: str, shape: Any, data: Any, max_records: int) -> list[Any]:
    """The values of one v2 input tensor, one per record (a scalar, or a list for wider tensors)."""
    if type(shape) is not list or not shape or len(shape) > MAX_DIMENSIONS or not all(map(_is_count, shape)):
        raise bad_payload(f'"shape" must be a list of 1 to {MAX_DIMENSIONS} non-negative integers', f"{field}.shape")
    count = shape[0]
    if count > max_records:
        raise too_many_records(count, max_records, f"{field}.shape")
    if 0 in shape[1:]:
        raise bad_payload(
            f"shape {shape} has an empty dimension after the first: its records hold no values", f"{field}.shape"
        )
    if type(data) is not list:
        raise bad_payload('"data" must be a list', f"{field}.data")
    flat = _flatten(data)
    width = 1
    for dim in shape[1:]:
        width *= dim
        if width > len(flat):
            break
    if count * width != len(flat):
        raise bad_payload(f'shape {shape} does not match the {len(flat)} values in "data"', f"{field}.data")
    if width == 1 and len(shape) <= 2:
        return flat
    return [flat[i * width : (i + 1) * width] for i in range(count)]


def v2_records(payload: Any, max_records: int) -> list[dict[str, Any]]:
    """`{"inputs": [{"name", "shape", "datatype", "data"}, ...]}` → one dict per record."""
    tensors = payload.get("inputs") if type(payload) is dict else None
    if type(tensors) is not list or not tensors:
        raise bad_payload('an inference request is an object whose "inputs" is a non-empty list of tensors', "inputs")
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(tensors):
        field = f"inputs[{index}]"
        if type(tensor) is not dict:
            raise bad_payload("each input must be an object with name, shape, datatype and data", field)
        name = tensor.get("name")
        if type(name) is not str:
            raise bad_payload('"name" must be a string', f"{field}.name")
        if name in columns:
            raise bad_payload(f"input {name!r} appears twice", f"{field}.name")
        columns[name] = _rows(field, tensor.get("shape"), tensor.get("data"), max_records)
    wanted = payload.get("outputs")
    if wanted is not None:
        output_names(wanted)
    return _columns_to_records(columns, "inputs")


def output_names(wanted: Any) -> set[str] | None:
    """The names in a v2 request's `outputs` (None: all outputs)."""
    if wanted is None:
        return None
    if type(wanted) is not list:
        raise bad_payload('"outputs" must be a list of objects with a "name"', "outputs")
    names = set()
    for index, output in enumerate(wanted):
        name = output.get("name") if type(output) is dict else None
        if type(name) is not str:
            raise bad_payload(
                'each requested output must be an object whose "name" is a string', f"outputs[{index}].name"
            )
        names.add(name)
    return names or None


def _columns_to_records(columns: dict[str, list[Any]], field: str) -> list[dict[str, Any]]:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise bad_payload(f"the columns disagree on the number of records: {lengths}", field)
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def v2_response(name: str, version: str, request_id: Any, results: list[Any], wanted: Any) -> dict[str, Any]:
    """Results as named output tensors: one per key of dict results, else one tensor named "predictions"."""
    columns: dict[str, list[Any]] = {}
    if results and all(isinstance(r, dict) for r in results):
        for key in results[0]:
            columns[str(key)] = [r.get(key) for r in results]
    else:
        columns["predictions"] = list(results)
    names = output_names(wanted)
    if names is not None:
        columns = {k: v for k, v in columns.items() if k in names}
    outputs = [
        {"name": key, "shape": [len(values)], "datatype": v2_datatype(values), "data": values}
        for key, values in columns.items()
    ]
    response: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        response["id"] = request_id
    return response


def v2_datatype(values: list[Any]) -> str:
    kinds = {V2_DATATYPES.get(type(v), "BYTES") for v in values if v is not None}
    if kinds == {"INT64", "FP64"}:
        return "FP64"
    return kinds.pop() if len(kinds) == 1 else "BYTES"


def _dataframe_split(value: Any, max_records: int) -> list[Any]:
    if type(value) is not dict or type(value.get("data")) is not list:
        raise bad_payload('"dataframe_split" is an object with "columns" (names) and "data" (rows)', "dataframe_split")
    rows: list[Any] = value["data"]
    if len(rows) > max_records:
        raise too_many_records(len(rows), max_records, "dataframe_split.data")
    columns = value.get("columns")
    if columns is None:
        return rows
    if type(columns) is not list:
        raise bad_payload('"columns" must be a list of names', "dataframe_split.columns")
    for index, column in enumerate(columns):
        if type(column) is not str:
            raise bad_payload("a column name must be a string", f"dataframe_split.columns[{index}]")
    records = []
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != len(columns):
            raise bad_payload(f"each row must be a list of {len(columns)} values", f"dataframe_split.data[{index}]")
        records.append(dict(zip(columns, row, strict=True)))
    return records


def mlflow_records(payload: Any, max_records: int) -> list[Any]:
    """An MLflow `/invocations` JSON payload → one record per row."""
    keys = [k for k in MLFLOW_KEYS if k in payload] if type(payload) is dict else []
    if len(keys) != 1:
        found = f"it has {keys}" if keys else "it has none"
        raise bad_payload(
            'an /invocations body is a JSON object with exactly one of "dataframe_records", "dataframe_split", '
            f'"instances" or "inputs"; {found}'
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _dataframe_split(value, max_records)
    if key in ("inputs", "instances") and type(value) is dict:
        columns = {}
        for name, values in value.items():
            if type(values) is not list:
                raise bad_payload("must be a list with one value per record", f"{key}.{name}")
            if len(values) > max_records:
                raise too_many_records(len(values), max_records, f"{key}.{name}")
            columns[name] = values
        return _columns_to_records(columns, key)
    if type(value) is not list:
        raise bad_payload("must be a list of records", key)
    if len(value) > max_records:
        raise too_many_records(len(value), max_records, key)
    return value


def _csv_value(text: str) -> Any:
    """A CSV cell as pandas' reader would type it: an integer, a float, empty as null, or the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def csv_records(body: bytes, max_records: int) -> list[dict[str, Any]]:
    """A CSV body with a header row → one record per line, values typed as pandas' `read_csv` would."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_payload(f"a text/csv body must be UTF-8: byte {exc.start} is not") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise bad_payload("a text/csv body starts with a header row naming the columns")
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise bad_payload(f"the CSV header names a column twice: {', '.join(duplicated)}")
        records: list[dict[str, Any]] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise bad_payload(f"CSV line {reader.line_num} has {len(row)} values; the header names {len(header)}")
            if len(records) == max_records:
                raise too_many_records(max_records + 1, max_records, "text/csv")
            records.append({name: _csv_value(cell) for name, cell in zip(header, row, strict=True)})
    except csv.Error as exc:
        raise bad_payload(f"the CSV body cannot be read at line {reader.line_num}: {exc}") from None
    return records


def pandas_records(payload: Any, orient: str, max_records: int) -> list[Any]:
    """The bare pandas orients of MLflow 1's `format=pandas-split|pandas-records` content types."""
    if orient == "pandas-split":
        return _dataframe_split(payload, max_records)
    if type(payload) is not list:
        raise bad_payload("a format=pandas-records body is a JSON list of records")
    if len(payload) > max_records:
        raise too_many_records(len(payload), max_records, None)
    return payload
