"""Helpers shared by the server tests."""

from __future__ import annotations

import time
from typing import Any

import httpx


def wait_for_new_worker(server: Any, old_pid: int, failure: str, seconds: float = 30) -> None:
    """Wait until a worker other than `old_pid` answers /health/ready; fail with `failure` and the server's log
    after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{server.url}/health/ready", timeout=1)
            if ready.status_code == 200 and ready.json()["pid"] != old_pid:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{failure}:\n{server.log()}")


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (in Prometheus text), None when there is none."""
    import re

    for match in re.finditer(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    return None
