"""A load test on loopback: 60 s at 256 connections over /score, /invocations and v2 inference, with no errors and
the server's memory flat (within 10 %) after warm-up."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

SECONDS = 60
CONNECTIONS = 256
WARM_UP = 15  # seconds before the first memory sample that counts

LUA = r"""
local bodies = {
  {"/score", '{"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}'},
  {"/invocations", '{"dataframe_records": [{"age": 37, "hours-per-week": 40.0}, {"age": 60, "hours-per-week": 10}]}'},
  {"/v2/models/census/infer",
   '{"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [37, 60]},' ..
   ' {"name": "hours-per-week", "shape": [2], "datatype": "FP64", "data": [40.0, 10.0]}]}'},
}
local n = 0
request = function()
  n = n + 1
  local pick = bodies[(n % #bodies) + 1]
  return wrk.format("POST", pick[1], {["Content-Type"] = "application/json"}, pick[2])
end
"""


def tree_rss(pid: int) -> float:
    """RSS in MiB of a process and all its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        children = []
        for parent in frontier:
            for task in Path(f"/proc/{parent}/task").glob("*"):
                with contextlib.suppress(OSError):
                    children += [int(c) for c in (task / "children").read_text().split()]
        pids += children
        frontier = children
    total = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@pytest.mark.load
def test_a_minute_at_256_connections_without_errors_or_growth(census_package: Path, start_server, tmp_path) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed: scripts/install-system-deps.sh installs it")
    server = start_server(census_package, "--workers", "2", "--log-level", "warning")
    script = tmp_path / "mix.lua"
    script.write_text(LUA)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.wait(2.5):
            samples.append((time.monotonic() - started, tree_rss(server.process.pid)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{CONNECTIONS}",
                f"-d{SECONDS}s",
                "--timeout",
                "5s",
                "--latency",
                "-s",
                str(script),
                server.url,
            ],
            capture_output=True,
            text=True,
            timeout=SECONDS + 60,
            check=True,
        ).stdout
    finally:
        done.set()
        sampler.join()
    print(out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    metrics = httpx.get(f"{server.url}/metrics").text.splitlines()
    errors = [line for line in metrics if line.startswith("conveyor_errors")]
    assert requests > SECONDS * 100, out
    assert non2xx is None, f"{out}\nthe server's error counters: {errors}"
    assert sockets is None, out
    settled = [rss for at, rss in samples if at >= WARM_UP]
    print("RSS MiB after warm-up:", [round(r, 1) for r in settled])
    assert len(settled) >= 10
    assert max(settled) <= settled[0] * 1.10, f"memory grew under load: {settled}"
    assert "Traceback" not in server.log(), server.log()
