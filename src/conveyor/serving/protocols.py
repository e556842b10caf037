"""Payloads of the protocols existing clients speak, turned into a list of records and back.

- Open Inference Protocol v2 (KServe, Triton, Seldon): named input tensors, first dimension = records.
- MLflow scoring server `/invocations`: `dataframe_records`, `dataframe_split`, `instances`, `inputs`.

A record is what score.py's `run()` receives for one request, as JSON text (as on `/score`).
"""

from __future__ import annotations

from typing import Any

from conveyor.serving.problems import bad_payload

V2_DATATYPES = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES"}


def _rows(name: str, shape: Any, data: Any) -> list[Any]:
    """The values of one v2 input tensor, one per record (a scalar, or a list for wider tensors)."""
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise bad_payload(f'input "{name}": "shape" must be a non-empty list of non-negative integers')
    if not isinstance(data, list):
        raise bad_payload(f'input "{name}": "data" must be a list')
    count, width = shape[0], 1
    for dim in shape[1:]:
        width *= dim
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:  # row-major flattening of nested lists, without recursion
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    if len(flat) != count * width:
        raise bad_payload(f'input "{name}": shape {shape} needs {count * width} values, "data" has {len(flat)}')
    if width == 1 and len(shape) <= 2:
        return flat
    return [flat[i * width : (i + 1) * width] for i in range(count)]


def v2_records(payload: Any) -> list[dict[str, Any]]:
    """`{"inputs": [{"name", "shape", "datatype", "data"}, ...]}` → one dict per record."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise bad_payload('an inference request needs "inputs": a non-empty list of tensors')
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise bad_payload(f'inputs[{index}] must be an object with a "name"')
        columns[tensor["name"]] = _rows(tensor["name"], tensor.get("shape"), tensor.get("data"))
    return _columns_to_records(columns)


def _columns_to_records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise bad_payload(f"inputs disagree on the number of records: {lengths}")
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
    if isinstance(wanted, list) and wanted:
        names = {w.get("name") for w in wanted if isinstance(w, dict)}
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


def mlflow_records(payload: Any) -> list[Any]:
    """An MLflow `/invocations` JSON payload → one record per row."""
    if not isinstance(payload, dict):
        raise bad_payload(
            "an /invocations body must be a JSON object with one of "
            '"dataframe_records", "dataframe_split", "instances" or "inputs"'
        )
    keys = [k for k in ("dataframe_records", "dataframe_split", "instances", "inputs") if k in payload]
    if len(keys) != 1:
        raise bad_payload(
            'an /invocations body needs exactly one of "dataframe_records", "dataframe_split", "instances", '
            f'"inputs"; it has {keys or "none"}'
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise bad_payload('"dataframe_split" needs "columns" and "data" (a list of rows)')
        columns = value.get("columns")
        rows = value["data"]
        if columns is None:
            return rows
        if not isinstance(columns, list):
            raise bad_payload('"dataframe_split.columns" must be a list of names')
        records = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(columns):
                raise bad_payload(f'"dataframe_split.data[{index}]" must be a list of {len(columns)} values')
            records.append(dict(zip(columns, row, strict=True)))
        return records
    if key in ("inputs", "instances") and isinstance(value, dict):
        columns = {}
        for name, values in value.items():
            if not isinstance(values, list):
                raise bad_payload(f'"{key}.{name}" must be a list with one value per record')
            columns[name] = values
        return _columns_to_records(columns)
    if not isinstance(value, list):
        raise bad_payload(f'"{key}" must be a list of records')
    return value
