"""Pieces that need no server: protocol decoding, source resolution, the call policy, metrics text."""

from __future__ import annotations

import pytest

from conveyor.errors import ConveyorError
from conveyor.serving.calls import CallPolicy
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.problems import HTTPProblem
from conveyor.serving.protocols import mlflow_records, v2_records, v2_response
from conveyor.serving.sources import resolve


def test_v2_tensors_become_records() -> None:
    payload = {
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]},
        ]
    }
    assert v2_records(payload, 100) == [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": "y"}]
    with pytest.raises(HTTPProblem, match="disagree"):
        v2_records(
            {"inputs": [{"name": "a", "shape": [1], "data": [1]}, {"name": "b", "shape": [2], "data": [1, 2]}]}, 100
        )
    with pytest.raises(HTTPProblem, match="101 records"):
        v2_records({"inputs": [{"name": "a", "shape": [101, 0], "data": []}]}, 100)
    response = v2_response("m", "1", None, [1.0, 2], None)
    assert response["outputs"] == [{"name": "predictions", "shape": [2], "datatype": "FP64", "data": [1.0, 2]}]


def test_mlflow_payloads() -> None:
    assert mlflow_records({"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}, 10) == [{"a": 1}, {"a": 2}]
    with pytest.raises(HTTPProblem, match="exactly one"):
        mlflow_records({"instances": [], "inputs": []}, 10)
    with pytest.raises(HTTPProblem) as raised:
        mlflow_records({"instances": [1] * 11}, 10)
    assert raised.value.status == 413 and raised.value.field == "instances"


def test_call_policy_goes_inline_for_fast_calls_and_back_for_slow_ones() -> None:
    policy = CallPolicy(ServingMetrics(), "auto")
    assert not policy.inline
    assert not CallPolicy(ServingMetrics()).inline, "by default score.py runs in threads"
    for _ in range(40):
        policy._record(0.00001)
    assert policy.inline
    for _ in range(40):
        policy._record(0.05)
    assert not policy.inline
    assert CallPolicy(ServingMetrics(), "never").inline
    with pytest.raises(ValueError):
        CallPolicy(ServingMetrics(), "sometimes")  # type: ignore[arg-type]


def test_metrics_histogram_is_cumulative() -> None:
    metrics = ServingMetrics()
    for size in (1, 3, 3, 100):
        metrics.observe_batch(size)
    text = metrics.render().decode()
    assert 'conveyor_batch_size_bucket{le="1.0"} 1.0' in text
    assert 'conveyor_batch_size_bucket{le="4.0"} 3.0' in text
    assert 'conveyor_batch_size_bucket{le="+Inf"} 4.0' in text
    assert "conveyor_batch_size_sum 107.0" in text


def test_metrics_gathered_on_the_loop_equal_one_observe_per_request() -> None:
    """Requests are counted in bulk (a flush at most FLUSH_SECONDS later, or at a scrape); the exposition is
    exactly what one prometheus_client observe() per request gives."""
    import asyncio
    import random

    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from conveyor.serving.metrics import FLUSH_SECONDS, LATENCY_BUCKETS

    rng = random.Random(5)
    latencies = [rng.choice(LATENCY_BUCKETS) if i % 7 == 0 else rng.uniform(0, 12) for i in range(500)]
    reference = Histogram(
        "conveyor_request_duration_seconds",
        "x",
        ["package", "endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=CollectorRegistry(),
    )
    for seconds in latencies:
        reference.labels("unbuilt", "/score").observe(seconds)
    expected = {s.name + repr(sorted(s.labels.items())): s.value for m in reference.collect() for s in m.samples}
    expected = {k: v for k, v in expected.items() if "_created" not in k}

    async def serve() -> tuple[str, str]:
        metrics = ServingMetrics()
        for seconds in latencies:
            metrics.observe_request("/score", 200, seconds)
        before = generate_latest(metrics.registry).decode()  # not yet flushed
        await asyncio.sleep(FLUSH_SECONDS * 3)
        return before, generate_latest(metrics.registry).decode()

    before, after = asyncio.run(serve())
    assert 'conveyor_requests_total{endpoint="/score",package="unbuilt",status="200"}' not in before
    assert 'conveyor_requests_total{endpoint="/score",package="unbuilt",status="200"} 500.0' in after
    for line in after.splitlines():
        if line.startswith("conveyor_request_duration_seconds_") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            metric, _, labels = name.partition("{")
            pairs = sorted(tuple(p.split("=", 1)) for p in labels.rstrip("}").split(",")) if labels else []
            key = metric + repr([(k, v.strip('"')) for k, v in pairs])
            assert expected[key] == pytest.approx(float(value)), key


def test_resolve_sources(toy_package, tmp_path) -> None:
    source = resolve(str(toy_package))
    assert source.kind == "package" and source.package_dir == toy_package.resolve()
    with pytest.raises(ConveyorError, match=r"score\.py is missing"):
        resolve(str(tmp_path))
    with pytest.raises(ConveyorError, match="does not exist"):
        resolve(str(tmp_path / "nope"))
    image = resolve("localhost/census:0123abcd")
    assert image.kind == "image" and image.image == "localhost/census:0123abcd"
    with pytest.raises(ConveyorError, match="needs an environment"):
        resolve("models:/census@prod")
    with pytest.raises(ConveyorError, match="bad model URI"):
        resolve("models:/census", "dev")


def test_cli_serve_reports_a_bad_source(tmp_path, capsys) -> None:
    from conveyor.cli.main import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_python_m_serving_exits_2_on_bad_usage_and_bad_source(tmp_path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "conveyor.serving"]
    usage = subprocess.run([*command, "pkg", "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "unrecognized arguments: --no-such-option" in usage.stderr
    missing = subprocess.run([*command, str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_the_server_entry_point_imports_none_of_the_command_lines_packages(toy_package) -> None:
    """What an image runs (`python -m conveyor.serving`) loads no typer, rich, pydantic or conveyor.cli (click is
    uvicorn's own dependency: `import uvicorn` loads it)."""
    import subprocess
    import sys

    program = (
        "import sys, runpy\n"
        "sys.argv = ['x', '--help']\n"
        "try:\n"
        "    runpy.run_module('conveyor.serving', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "from conveyor.serving.app import ScoringApp\n"
        "import conveyor.serving.server, conveyor.serving.connections, conveyor.serving.watchdog\n"
        f"app = ScoringApp({str(toy_package)!r})\n"
        "app.metrics.render()\n"
        "heavy = ('typer', 'rich', 'pydantic', 'mlflow', 'pandas', 'sqlalchemy', 'conveyor.cli')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_serve_options_name_the_bad_one() -> None:
    from conveyor.serving import ServeOptions

    with pytest.raises(ConveyorError, match="--max-records must be at least 1"):
        ServeOptions(max_records=0).check()
    with pytest.raises(ConveyorError, match="--header-timeout must be more than 0"):
        ServeOptions(header_timeout=0).check()
    assert ServeOptions(workers=2, timeout=5.0).arguments() == ["--workers", "2", "--timeout", "5.0"]


def test_deadlines_fire_late_by_at_most_their_resolution_and_never_once_discarded() -> None:
    import asyncio

    from conveyor.serving.deadlines import Deadlines

    async def scenario() -> tuple[dict[str, float], int]:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(resolution=0.02)
        fired: dict[str, float] = {}
        start = loop.time()
        deadlines.add(0.1, lambda: fired.__setitem__("due", loop.time() - start))
        kept = deadlines.add(0.05, lambda: fired.__setitem__("discarded", loop.time() - start))
        deadlines.discard(kept)
        await asyncio.sleep(0.3)
        pending = len(deadlines._due)
        return fired, pending

    fired, pending = asyncio.run(scenario())
    assert set(fired) == {"due"} and 0.1 <= fired["due"] < 0.1 + 0.02 + 0.05, fired
    assert pending == 0


def test_scored_records_feed_a_bounded_window_and_numeric_results_the_histogram(census_package) -> None:
    from conveyor.serving.drift import open_window
    from conveyor.serving.metrics import numeric_prediction

    assert numeric_prediction(3) == 3.0 and numeric_prediction({"estimated_wages": 2.5, "model": "census"}) == 2.5
    assert numeric_prediction({"a": 1.0, "b": 2.0}) is None and numeric_prediction("yes") is None
    window, reason = open_window(census_package, capacity=2_000)
    assert window is not None and reason is None
    metrics = ServingMetrics("sha256:" + "ab" * 32, window, reason)
    fixed = window.nbytes
    record = {"age": 37, "hours-per-week": 40.0, "sex": "Female"}
    for _ in range(50):
        metrics.observe_scored_many([record] * 1000, [{"estimated_wages": 190_000.0}] * 1000)
        metrics.flush()
    assert window.records == 2_000 and window.seen == 50_000 and window.nbytes == fixed
    text = metrics.render().decode()
    assert f'conveyor_predictions_count{{package="sha256:{"ab" * 32}"}} 50000.0' in text
    assert f'conveyor_drift_window_records{{package="sha256:{"ab" * 32}"}} 2000.0' in text
