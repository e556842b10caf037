"""Per-version figures in /metrics: every figure carries the package digest; the drift gauges follow what is scored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
from serving_support import metric_value

from conveyor.examples.census_data import write_census_csv


def census_rows(tmp_path: Path, rows: int, seed: int) -> list[dict[str, object]]:
    path = tmp_path / "live.csv"
    write_census_csv(path, rows=rows, seed=seed)
    frame = pd.read_csv(path, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame[["age", "hours-per-week", "sex", "occupation"]].to_dict("records")


def scrape(server) -> str:
    return httpx.get(f"{server.url}/metrics").text


def test_a_served_census_package_shows_the_drift_of_shifted_inputs(census_package, start_server, tmp_path) -> None:
    server = start_server(census_package, "--workers", "1")
    package = httpx.get(f"{server.url}/health/ready").json()["package"]
    text = scrape(server)
    assert metric_value(text, "conveyor_drift_available", package=package) == 1.0
    assert metric_value(text, "conveyor_drift_window_records", package=package) == 0.0
    rows = census_rows(tmp_path, 1200, 17)
    for row in rows:
        row["age"] = int(row["age"]) + 15
        row["hours-per-week"] = float(row["hours-per-week"]) * 1.5
    for start in range(0, len(rows), 400):
        answer = httpx.post(f"{server.url}/invocations", json={"dataframe_records": rows[start : start + 400]})
        assert answer.status_code == 200, answer.text
    for row in rows[:50]:  # one request at a time is counted too
        assert httpx.post(f"{server.url}/score", json=row).status_code == 200
    text = scrape(server)
    assert metric_value(text, "conveyor_drift_window_records", package=package) == 1250.0
    for feature in ("age", "hours-per-week"):
        psi = metric_value(text, "conveyor_drift_psi", package=package, feature=feature)
        pvalue = metric_value(text, "conveyor_drift_ks_pvalue", package=package, feature=feature)
        assert psi is not None and psi > 0.2, feature
        assert pvalue is not None and pvalue < 0.01, feature
    assert metric_value(text, "conveyor_predictions_count", package=package) == 1250.0
    total = metric_value(text, "conveyor_predictions_sum", package=package)
    assert total is not None and 1e5 < total / 1250 < 5e5, "the mean estimated wage, in fnlwgt units"
    assert metric_value(text, "conveyor_requests_total", package=package, endpoint="/score", status="200") == 50.0


def test_unshifted_inputs_do_not_drift(census_package, start_server, tmp_path) -> None:
    server = start_server(census_package, "--workers", "1")
    package = httpx.get(f"{server.url}/health/ready").json()["package"]
    answer = httpx.post(f"{server.url}/invocations", json={"dataframe_records": census_rows(tmp_path, 1500, 23)})
    assert answer.status_code == 200
    text = scrape(server)
    for feature in ("age", "hours-per-week"):
        psi = metric_value(text, "conveyor_drift_psi", package=package, feature=feature)
        assert psi is not None and psi < 0.1, feature


def test_a_package_without_a_profile_says_drift_is_unavailable(toy_package, start_server) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_DB_PASSWORD": "not-a-real-one"})
    package = httpx.get(f"{server.url}/health/ready").json()["package"]
    assert httpx.post(f"{server.url}/score", json={"x": 2}).status_code == 200
    text = scrape(server)
    assert metric_value(text, "conveyor_drift_available", package=package) == 0.0
    assert "conveyor_drift_psi{" not in text and "conveyor_drift_window_records{" not in text
    assert metric_value(text, "conveyor_predictions_count", package=package) is not None
    assert "drift is unavailable" in server.log() and "holds no training profile" in server.log()


def test_the_server_looks_for_the_profile_file_the_build_writes() -> None:
    from conveyor.drift import PROFILE_FILE
    from conveyor.serving import drift

    assert drift.PROFILE_FILE == PROFILE_FILE
