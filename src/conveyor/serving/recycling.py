"""Recycling a worker, as gunicorn does: after `max_requests` (plus up to `max_requests_jitter`, so workers do not
all restart at once), or once its resident memory passes `max_worker_memory` MiB (a score.py that leaks).

The check runs after each response; a worker due for recycling stops accepting, finishes the requests it has
and exits, and the supervisor starts a fresh one. Both are off (0) by default.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable

from conveyor.serving.asgi import Receive, Scope, Send

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_mib() -> float:
    """This process's resident memory now (not its peak), in MiB."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE / 2**20


class Recycling:
    """ASGI middleware that calls `retire(reason)` once the worker has served enough or grown too big."""

    def __init__(
        self,
        app: ASGIApp,
        retire: Callable[[str], None],
        *,
        max_requests: int = 0,
        jitter: int = 0,
        max_memory_mib: int = 0,
    ) -> None:
        self.app, self.retire = app, retire
        self.limit = max_requests + (random.randint(0, jitter) if max_requests and jitter else 0)  # noqa: S311 -- jitter that spreads worker restarts, not a secret
        self.max_memory_mib = max_memory_mib
        self.served = 0
        self.retiring = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] != "http" or self.retiring:
            return
        self.served += 1
        if self.limit and self.served >= self.limit:
            self._retire(f"recycling after {self.served} requests (--max-requests)")
        elif self.max_memory_mib and (rss := resident_mib()) > self.max_memory_mib:
            self._retire(f"resident memory {rss:.0f} MiB is over --max-worker-memory {self.max_memory_mib} MiB")

    def _retire(self, reason: str) -> None:
        self.retiring = True
        self.retire(reason)
