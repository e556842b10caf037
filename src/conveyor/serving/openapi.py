"""The OpenAPI 3.1 document of a scoring server, with the model's example request in every payload."""

from __future__ import annotations

from typing import Any

from conveyor.serving.protocols import v2_datatype

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "kind": {"type": "string"},
        "field": {"type": "string", "description": "Where in the request the fault is, e.g. inputs[0].shape"},
        "error_id": {"type": "string", "description": "5xx only: find the details in the server log"},
        "record": {"type": "integer", "description": "Which record of a multi-record request failed"},
    },
    "required": ["error", "kind"],
}


def _v2_example(example: Any) -> dict[str, Any]:
    if not isinstance(example, dict):
        return {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [example]}]}
    return {
        "inputs": [
            {"name": key, "shape": [1], "datatype": v2_datatype([value]), "data": [value]}
            for key, value in example.items()
        ]
    }


def _json_body(example: Any, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema or {}}
    if example is not None:
        content["example"] = example
    return {"required": True, "description": description, "content": {"application/json": content}}


def _answers(ok: str, *statuses: int) -> dict[str, Any]:
    texts = {
        400: "Malformed JSON or payload; `field` names the part at fault",
        404: "No such model on this server",
        408: "The request body did not arrive in time",
        413: "Body over the size limit, or more records than the server scores at once",
        422: "The request does not match the model's input",
        500: "score.py raised; the body carries an error_id that is in the server log",
        503: "The model is not ready",
        504: "score.py did not answer in time; the body carries an error_id that is in the server log",
    }
    answers: dict[str, Any] = {"200": {"description": ok, "content": {"application/json": {"schema": {}}}}}
    for status in statuses:
        answers[str(status)] = {
            "description": texts[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return answers


def build_openapi(name: str, version: str, example: Any) -> dict[str, Any]:
    """The document served at `/openapi.json`."""
    scoring = (400, 408, 413, 422, 500, 503, 504)
    health = {"200": {"description": "Yes"}, "503": {"description": "Not (yet)"}}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    model_health = {**health, "404": {"description": "No such model on this server", **error}}
    records = [example] if example is not None else None
    model_path = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [name]}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{name} scoring API",
            "version": version,
            "description": "score.py served by conveyor: /score, Open Inference Protocol v2 and MLflow "
            "/invocations payloads.",
        },
        "paths": {
            "/score": {
                "post": {
                    "summary": "Score one request (handed to run() as JSON text) or a JSON list of requests",
                    "requestBody": _json_body(example, "The model's request; a JSON list scores several."),
                    "responses": _answers("run()'s result (a list for a list of requests)", *scoring),
                }
            },
            "/invocations": {
                "post": {
                    "summary": "MLflow scoring protocol",
                    "requestBody": _json_body(
                        {"dataframe_records": records} if records else None,
                        "One of dataframe_records, dataframe_split, instances, inputs.",
                        {"$ref": "#/components/schemas/MlflowRequest"},
                    ),
                    "responses": _answers('{"predictions": [...]}', *scoring),
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "Open Inference Protocol v2 inference",
                    "parameters": [model_path],
                    "requestBody": _json_body(
                        _v2_example(example), "Named input tensors; the first dimension counts records."
                    ),
                    "responses": _answers("Named output tensors", 404, *scoring),
                }
            },
            "/v2/models/{name}": {
                "get": {"summary": "Model metadata", "parameters": [model_path], "responses": model_health}
            },
            "/v2/models/{name}/ready": {
                "get": {"summary": "Model readiness", "parameters": [model_path], "responses": model_health}
            },
            "/v2": {"get": {"summary": "Server metadata", "responses": {"200": {"description": "Metadata"}}}},
            "/v2/health/live": {"get": {"summary": "Server is live", "responses": health}},
            "/v2/health/ready": {"get": {"summary": "Server is ready", "responses": health}},
            "/health/live": {"get": {"summary": "Process is live", "responses": health}},
            "/health/ready": {"get": {"summary": "init() has succeeded", "responses": health}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of the whole server (every worker)",
                    "responses": {"200": {"description": "text/plain; version=0.0.4"}},
                }
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
        },
        "components": {
            "schemas": {
                "Error": ERROR_SCHEMA,
                "MlflowRequest": {
                    "type": "object",
                    "properties": {
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                        "dataframe_split": {
                            "type": "object",
                            "properties": {"columns": {"type": "array"}, "data": {"type": "array"}},
                        },
                        "instances": {},
                        "inputs": {},
                    },
                },
            }
        },
    }
