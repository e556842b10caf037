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
