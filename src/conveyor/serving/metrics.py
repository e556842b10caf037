"""Prometheus metrics kept as plain counters and fixed-bucket histograms: a few dict and list updates a request."""

from __future__ import annotations

import os
from bisect import bisect_left

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    """Counts per fixed upper bound (`le`), plus sum and count; rendered cumulatively."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def render(self, name: str, labels: str = "") -> list[str]:
        lines, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*self.bounds, "+Inf"), self.counts, strict=True):
            running += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        suffix = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{suffix} {self.total}")
        lines.append(f"{name}_count{suffix} {self.count}")
        return lines


class ServingMetrics:
    """What one worker has served: requests by endpoint and status, latencies, batch sizes, errors by kind."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.errors: dict[str, int] = {}
        self.batch_fallbacks = 0
        self.inline_calls = 0
        self.thread_calls = 0

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self.latency.get(endpoint)
        if histogram is None:
            histogram = self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def render(self) -> bytes:
        """The Prometheus text exposition format (version 0.0.4)."""
        pid = os.getpid()
        out = [
            "# HELP conveyor_requests_total HTTP requests served, by endpoint and status code.",
            "# TYPE conveyor_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            out.append(f'conveyor_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}')
        out += [
            "# HELP conveyor_request_duration_seconds Time from request start to response sent.",
            "# TYPE conveyor_request_duration_seconds histogram",
        ]
        for endpoint, histogram in sorted(self.latency.items()):
            out += histogram.render("conveyor_request_duration_seconds", f'endpoint="{endpoint}"')
        out += [
            "# HELP conveyor_batch_size Requests gathered into one run_batch() call.",
            "# TYPE conveyor_batch_size histogram",
            *self.batch_size.render("conveyor_batch_size"),
            "# HELP conveyor_errors_total Failed requests, by kind.",
            "# TYPE conveyor_errors_total counter",
        ]
        for kind, count in sorted(self.errors.items()):
            out.append(f'conveyor_errors_total{{kind="{kind}"}} {count}')
        out += [
            "# HELP conveyor_batch_fallbacks_total Batches re-run request by request after run_batch() raised.",
            "# TYPE conveyor_batch_fallbacks_total counter",
            f"conveyor_batch_fallbacks_total {self.batch_fallbacks}",
            "# HELP conveyor_score_calls_total Calls into score.py, by where they ran (event loop or thread pool).",
            "# TYPE conveyor_score_calls_total counter",
            f'conveyor_score_calls_total{{mode="inline"}} {self.inline_calls}',
            f'conveyor_score_calls_total{{mode="thread"}} {self.thread_calls}',
            "# HELP conveyor_worker_pid Process id of the worker that answered this scrape.",
            "# TYPE conveyor_worker_pid gauge",
            f"conveyor_worker_pid {pid}",
        ]
        return ("\n".join(out) + "\n").encode()
