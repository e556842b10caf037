"""Request deadlines on one timer per worker instead of one timer per request.

A body read and a call into score.py each need a deadline, and a timer per request (created, then cancelled a
millisecond later) was a visible share of a fast model's serving time. `Deadlines` keeps them in a dict and one
timer checks them every `resolution` seconds while any is pending, so a deadline fires at most that much late.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class Deadlines:
    """Callbacks due at a loop time; `add` returns a token that `discard` forgets (the usual end: in time)."""

    def __init__(self, resolution: float = 0.05) -> None:
        self.resolution = resolution
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._tokens = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, delay: float, callback: Callable[[], None]) -> int:
        """Call `callback` on the running loop once `delay` seconds have passed, unless discarded first."""
        loop = asyncio.get_running_loop()
        token = next(self._tokens)
        self._due[token] = (loop.time() + delay, callback)
        if self._timer is None:
            self._timer = loop.call_later(min(self.resolution, delay), self._check)
        return token

    def discard(self, token: int) -> None:
        self._due.pop(token, None)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = [token for token, (at, _) in self._due.items() if at <= now]
        for token in expired:
            _, callback = self._due.pop(token)
            callback()
        self._timer = loop.call_later(self.resolution, self._check) if self._due else None

    def cancel_all(self) -> None:
        """Forget every deadline and stop the timer (the worker is stopping)."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
