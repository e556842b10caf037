"""Every endpoint and every protocol payload against a real census server."""

from __future__ import annotations

import time

import httpx
import pytest
from serving_support import metric_value

REQUEST = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}


def _score(server, body) -> float:
    response = httpx.post(f"{server.url}/score", json=body)
    assert response.status_code == 200, response.text
    return response.json()["estimated_wages"]


def test_score_matches_the_model(census_server, census_package) -> None:
    import pickle

    import numpy as np

    parts = {
        n: pickle.loads((census_package / "model" / f"{n}.pkl").read_bytes()) for n in ("x_scaler", "y_scaler", "model")
    }
    expected = parts["y_scaler"].inverse_transform(
        parts["model"].predict(parts["x_scaler"].transform(np.array([[37.0, 40.0]]))).reshape(-1, 1)
    )[0, 0]
    assert _score(census_server, REQUEST) == pytest.approx(expected)


def test_score_accepts_a_list_of_requests(census_server) -> None:
    other = {"age": 60, "hours-per-week": 10}
    response = httpx.post(f"{census_server.url}/score", json=[REQUEST, other])
    assert response.status_code == 200
    results = response.json()
    assert [r["estimated_wages"] for r in results] == pytest.approx(
        [_score(census_server, REQUEST), _score(census_server, other)]
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_records": [{"age": 37, "hours-per-week": 40.0}, {"age": 60, "hours-per-week": 10}]},
        {"dataframe_split": {"columns": ["age", "hours-per-week"], "data": [[37, 40.0], [60, 10]]}},
        {"instances": [{"age": 37, "hours-per-week": 40.0}, {"age": 60, "hours-per-week": 10}]},
        {"inputs": {"age": [37, 60], "hours-per-week": [40.0, 10]}},
        {"inputs": [{"age": 37, "hours-per-week": 40.0}, {"age": 60, "hours-per-week": 10}]},
    ],
    ids=["dataframe_records", "dataframe_split", "instances", "inputs-columns", "inputs-records"],
)
def test_mlflow_invocations(census_server, payload) -> None:
    response = httpx.post(f"{census_server.url}/invocations", json=payload)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = [
        _score(census_server, {"age": 37, "hours-per-week": 40.0}),
        _score(census_server, {"age": 60, "hours-per-week": 10}),
    ]
    assert [p["estimated_wages"] for p in predictions] == pytest.approx(expected)


def test_open_inference_protocol_v2(census_server) -> None:
    url = census_server.url
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2").json()["name"] == "conveyor"
    metadata = httpx.get(f"{url}/v2/models/census").json()
    assert metadata["name"] == "census" and metadata["versions"] == ["3"]
    assert {i["name"] for i in metadata["inputs"]} == {"age", "hours-per-week", "sex", "occupation"}
    assert httpx.get(f"{url}/v2/models/census/ready").json()["ready"] is True
    request = {
        "id": "req-1",
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [37, 60]},
            {"name": "hours-per-week", "shape": [2, 1], "datatype": "FP32", "data": [[40.0], [10.0]]},
        ],
    }
    for path in ("/v2/models/census/infer", "/v2/models/census/versions/3/infer"):
        response = httpx.post(f"{url}{path}", json=request)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "req-1" and body["model_name"] == "census" and body["model_version"] == "3"
        (output,) = body["outputs"]
        assert output["name"] == "estimated_wages" and output["shape"] == [2] and output["datatype"] == "FP64"
        assert output["data"] == pytest.approx(
            [
                _score(census_server, {"age": 37, "hours-per-week": 40}),
                _score(census_server, {"age": 60, "hours-per-week": 10}),
            ]
        )
    missing = httpx.post(f"{url}/v2/models/other/infer", json=request)
    assert missing.status_code == 404 and "census" in missing.json()["error"]
    bad_shape = {"inputs": [{"name": "age", "shape": [3], "datatype": "INT64", "data": [1, 2]}]}
    response = httpx.post(f"{url}/v2/models/census/infer", json=bad_shape)
    assert response.status_code == 400 and "shape [3]" in response.json()["error"]


def test_health_metrics_and_openapi(census_server) -> None:
    url = census_server.url
    assert httpx.get(f"{url}/health/live").json()["status"] == "live"
    ready = httpx.get(f"{url}/health/ready").json()
    assert ready["status"] == "ready" and ready["model"] == "census"
    _score(census_server, REQUEST)
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    package = ready["package"]
    assert package.startswith("sha256:")
    assert metric_value(text, "conveyor_requests_total", package=package, endpoint="/score", status="200")
    assert metric_value(text, "conveyor_request_duration_seconds_bucket", package=package, endpoint="/score", le="+Inf")
    assert "conveyor_batch_size_count" in text
    document = httpx.get(f"{url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/score", "/invocations", "/v2/models/{name}/infer", "/health/ready", "/metrics"} <= set(document["paths"])
    example = document["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert example == REQUEST


def test_lone_request_does_not_wait_for_a_batch(census_server) -> None:
    """The server allows batches to wait 1000 ms, yet a request with nobody else around is answered at once."""
    with httpx.Client() as client:
        client.post(f"{census_server.url}/score", json=REQUEST)
        started = time.perf_counter()
        for _ in range(5):
            assert client.post(f"{census_server.url}/score", json=REQUEST).status_code == 200
        assert (time.perf_counter() - started) / 5 < 0.1


def test_unknown_path_and_wrong_method(census_server) -> None:
    assert httpx.get(f"{census_server.url}/nope").status_code == 404
    response = httpx.get(f"{census_server.url}/score")
    assert response.status_code == 405 and "POST" in response.json()["error"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/csv", "age,hours-per-week\n37,40.0\n60,10\n"),
        ("text/csv; charset=utf-8", "age,hours-per-week\r\n37,40.0\r\n60,10\r\n"),
        (
            "application/json; format=pandas-split",
            '{"columns": ["age", "hours-per-week"], "data": [[37, 40.0], [60, 10]]}',
        ),
        (
            "application/json; format=pandas-records",
            '[{"age": 37, "hours-per-week": 40.0}, {"age": 60, "hours-per-week": 10}]',
        ),
    ],
    ids=["csv", "csv-crlf", "pandas-split", "pandas-records"],
)
def test_mlflow_invocations_csv_and_pandas_formats(census_server, content_type, body) -> None:
    """MLflow's scoring protocol also takes CSV with a header row, and the pandas orients named in the type."""
    response = httpx.post(f"{census_server.url}/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    expected = [
        _score(census_server, {"age": 37, "hours-per-week": 40.0}),
        _score(census_server, {"age": 60, "hours-per-week": 10}),
    ]
    assert [p["estimated_wages"] for p in response.json()["predictions"]] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("age,hours-per-week\n37,40.0,99\n", "line 2"),
        ("", "header"),
        ("age,age\n1,2\n", "age"),
        (b"age\n\xff\xfe\n", "UTF-8"),
    ],
)
def test_a_malformed_csv_is_400_naming_the_problem(census_server, body, named) -> None:
    response = httpx.post(f"{census_server.url}/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


def test_an_unknown_content_type_is_415(census_server) -> None:
    response = httpx.post(f"{census_server.url}/invocations", content="x", headers={"content-type": "text/xml"})
    assert response.status_code == 415
    assert "text/csv" in response.json()["error"]
