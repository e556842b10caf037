"""Prometheus metrics with prometheus_client; with several workers, in its multiprocess mode.

The supervisor gives every worker the same `PROMETHEUS_MULTIPROC_DIR` (`multiprocess_dir()`); each worker writes
its values to memory-mapped files there, and whichever worker answers a scrape reads all of them: every scrape
reports the whole server, and counters of a worker that died stay counted, so they never go backwards.
Without that variable (an app created in-process) the metrics live in the app's own registry.

Writing a value to those files takes a lock and a write per observation: several per request, a fifth of a fast
model's serving time. So a worker gathers the per-request figures (requests, latencies, batch sizes, calls) in
plain counters on its event loop and adds them to prometheus_client's values in bulk at most `FLUSH_SECONDS`
later (and before it answers a scrape, and when it stops): a scrape may miss the last tenth of a second of
another worker's requests, never count them twice, and counters still never go backwards.

Requests, latencies, errors and predictions carry a `package` label: the digest of the package the server serves
(`unbuilt` for a folder without a manifest), one value per server, so that two versions served side by side can be
told apart. The scored records and their results are gathered the same way and handed, at a flush, to the drift
window (`conveyor.serving.drift`) and to the prediction histogram.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.drift import DriftWindow

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Scored values, for any model: decades, finer around 0..1 (probabilities) and on both sides of 0.
PREDICTION_BUCKETS = (
    -1e6,
    -1e3,
    -1.0,
    0.0,
    0.1,
    0.25,
    0.5,
    0.75,
    0.9,
    1.0,
    10.0,
    100.0,
    1e3,
    1e4,
    1e5,
    2.5e5,
    5e5,
    1e6,
    1e7,
)
FLUSH_SECONDS = 0.1
UNBUILT = "unbuilt"


def numeric_prediction(result: Any) -> float | None:
    """The scored value of a result when it is a number, or a dict with exactly one number among its values."""
    kind = type(result)
    if kind is float or kind is int:
        return float(result)
    if kind is dict:
        numbers = [v for v in result.values() if type(v) is float or type(v) is int]
        if len(numbers) == 1:
            return float(numbers[0])
    return None


class ServingMetrics:
    """Requests by package, endpoint and status, latencies, batch sizes, errors by kind, where score.py calls ran,
    predictions; with a drift window (`drift`), the drift gauges of the records scored (`reason`: why there is
    none)."""

    def __init__(self, package: str = UNBUILT, drift: DriftWindow | None = None, reason: str | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir:
            # chosen per worker, after the fork: files named by this process's pid
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess_dir else self.registry
        self._requests = Counter(
            "conveyor_requests",
            "HTTP requests served, by endpoint and status code.",
            ["package", "endpoint", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "conveyor_request_duration_seconds",
            "Time from request start to response sent.",
            ["package", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._batch_size = Histogram(
            "conveyor_batch_size",
            "Requests scored in one call into score.py.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._errors = Counter(
            "conveyor_errors", "Failed requests, by package and kind.", ["package", "kind"], registry=registry
        )
        self._predictions = Histogram(
            "conveyor_predictions",
            "Scored values (results that are a number, or hold exactly one), by package.",
            ["package"],
            buckets=PREDICTION_BUCKETS,
            registry=registry,
        ).labels(package)
        self._fallbacks = Counter(
            "conveyor_batch_fallbacks",
            "Batches re-run request by request after run_batch() raised.",
            registry=registry,
        )
        self._calls = Counter(
            "conveyor_score_calls",
            "Calls into score.py, by where they ran (event loop or thread pool).",
            ["mode"],
            registry=registry,
        )
        workers = Gauge("conveyor_workers", "Worker processes serving.", multiprocess_mode="livesum", registry=registry)
        workers.set(1)
        from conveyor.serving.drift import WINDOW_RECORDS, DriftCollector

        self.package = package
        self.drift = DriftCollector(package, drift, reason)
        self._drift_registry = CollectorRegistry(auto_describe=False)
        self._drift_registry.register(self.drift)
        self._window = drift
        self._keep = drift.capacity if drift is not None else WINDOW_RECORDS
        self._records_due: list[Any] = []
        self._results_due: list[Any] = []
        self._children: dict[Any, Any] = {}
        self._requests_due: dict[tuple[str, str], int] = {}
        self._latencies_due: dict[str, list[float]] = {}
        self._batches_due: list[int] = []
        self._calls_due: dict[str, int] = {}
        self._flush_timer: asyncio.TimerHandle | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        """The metric's child for `labels` (after this server's package, for the metrics labelled by package),
        made once, on first use, then kept."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            package = (self.package,) if "package" in metric._labelnames else ()
            child = self._children[key] = metric.labels(*package, *labels)
        return child

    def observe_scored(self, record: Any, result: Any) -> None:
        """One record scored (the parsed request) and its result: for the drift window and the predictions. The
        request's `observe_request` schedules the flush."""
        self._records_due.append(record)
        self._results_due.append(result)

    def observe_scored_many(self, records: list[Any], results: list[Any]) -> None:
        """Records scored together and their results, in the same order (flushed as `observe_scored`'s are)."""
        self._records_due.extend(records)
        self._results_due.extend(results)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, str(status))
        due = self._requests_due
        due[key] = due.get(key, 0) + 1
        latencies = self._latencies_due.get(endpoint)
        if latencies is None:
            latencies = self._latencies_due[endpoint] = []
        latencies.append(seconds)
        self._flush_soon()

    def observe_batch(self, size: int) -> None:
        self._batches_due.append(size)
        self._flush_soon()

    def count_error(self, kind: str) -> None:
        self._child(self._errors, kind).inc()

    def count_fallback(self) -> None:
        self._fallbacks.inc()

    def count_call(self, mode: str) -> None:
        due = self._calls_due
        due[mode] = due.get(mode, 0) + 1
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Flush within FLUSH_SECONDS (gathered figures come only from the event loop's thread)."""
        if self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: render() flushes
                return
            self._flush_timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Add the figures gathered since the last flush to prometheus_client's values."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        requests, self._requests_due = self._requests_due, {}
        latencies, self._latencies_due = self._latencies_due, {}
        batches, self._batches_due = self._batches_due, []
        calls, self._calls_due = self._calls_due, {}
        records, self._records_due = self._records_due, []
        results, self._results_due = self._results_due, []
        for (endpoint, status), count in requests.items():
            self._child(self._requests, endpoint, status).inc(count)
        for endpoint, seconds in latencies.items():
            _observe_all(self._child(self._latency, endpoint), LATENCY_BUCKETS, seconds)
        if batches:
            _observe_all(self._batch_size, BATCH_BUCKETS, batches)
        for mode, count in calls.items():
            self._child(self._calls, mode).inc(count)
        if results:
            self._observe_scored(records, results)

    def _observe_scored(self, records: list[Any], results: list[Any]) -> None:
        """Predictions into their histogram, records into the drift window (the last window's worth of each)."""
        keep = self._keep
        values = [v for v in map(numeric_prediction, results) if v is not None]
        if values:
            _observe_all(self._predictions, PREDICTION_BUCKETS, values)
        if self._window is not None:
            self._window.add_records(records[-keep:])

    def render(self) -> bytes:
        """The Prometheus text exposition format (version 0.0.4) of the whole server."""
        from prometheus_client import CollectorRegistry, generate_latest

        self.flush()
        drift = generate_latest(self._drift_registry)
        if not self.multiprocess_dir:
            return generate_latest(self.registry) + drift
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry) + drift


def _observe_all(histogram: Any, bounds: tuple[float, ...], values: list[float] | list[int]) -> None:
    """`histogram.observe(v)` for every value, as one addition per bucket and one to the sum (prometheus_client's
    Histogram keeps them as `_buckets` and `_sum`; without those, one observe() per value)."""
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bounds) + 1:
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(buckets)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value; +Inf last
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    total.inc(sum(values))


def multiprocess_dir() -> tuple[Path, bool]:
    """The folder the workers share their metrics in, set in the environment before any worker starts, and
    whether it is ours to delete (a folder the user set in PROMETHEUS_MULTIPROC_DIR is left alone)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given), False
    folder = Path(tempfile.mkdtemp(prefix="conveyor-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder, True


def worker_gone(folder: Path, pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay: totals never go backwards)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(folder: Path) -> None:
    """Delete the folder `multiprocess_dir()` made, and its variable."""
    shutil.rmtree(folder, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == str(folder):
        del os.environ[MULTIPROC_ENV]
