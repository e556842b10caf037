"""Where a call into score.py runs: in a thread pool (the default) or on the event loop (inline), and for how long.

In the thread pool, the event loop stays free while score.py works: health checks, metrics and other connections
are answered during a slow call, and a call that overruns the scoring timeout is answered with 504 (the thread
cannot be stopped; `oldest_running()` lets a watchdog retire a worker whose calls hang).

Inline calls save the thread hop (tens of microseconds), but nothing else runs while one is in progress. `auto`
times every call and runs score.py inline while its calls stay fast (moving average under `inline_below`), and in
the thread pool once they are slow (over `offload_above`); a single slow call made inline still holds the loop.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.serving.metrics import ServingMetrics


class Offload(StrEnum):
    """Where score.py runs: `always` in threads, `never` on the event loop, `auto` by measured duration."""

    ALWAYS = "always"
    AUTO = "auto"
    NEVER = "never"


class CallPolicy:
    """Runs score.py calls in threads or inline, and keeps the start time of every call still running."""

    def __init__(
        self,
        metrics: ServingMetrics,
        offload: Offload | str = Offload.ALWAYS,
        inline_below: float = 0.0005,
        offload_above: float = 0.002,
        threads: int = 8,
    ) -> None:
        try:
            self.offload = Offload(offload)
        except ValueError:
            raise ValueError(f"offload must be always, auto or never, not {offload!r}") from None
        self.metrics = metrics
        self.inline = self.offload is Offload.NEVER
        self.inline_below = inline_below
        self.offload_above = offload_above
        self.average = offload_above  # seconds, exponential moving average of call durations
        self.running: dict[int, float] = {}  # call number -> perf_counter() at its start
        self._numbers = itertools.count()
        self._executor: ThreadPoolExecutor | None = None
        self._threads = threads

    def _record(self, seconds: float) -> None:
        average = self.average = self.average * 0.9 + seconds * 0.1
        if self.offload is Offload.AUTO:
            if self.inline:
                if average > self.offload_above:
                    self.inline = False
            elif average < self.inline_below:
                self.inline = True

    def _timed(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        number = next(self._numbers)
        start = self.running[number] = perf_counter()
        try:
            return fn(arg)
        finally:
            del self.running[number]
            self._record(perf_counter() - start)

    def oldest_running(self) -> float:
        """Seconds the longest call still in progress has run (0 when none is)."""
        for _ in range(3):  # the dict may change size under us while threads finish calls
            try:
                starts = list(self.running.values())
                break
            except RuntimeError:
                continue
        else:
            return 0.0
        return perf_counter() - min(starts) if starts else 0.0

    def call_inline(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        self.metrics.count_call("inline")
        return self._timed(fn, arg)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """Run `fn(arg)` in the thread pool; the returned future resolves on the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="score")
        self.metrics.count_call("thread")
        return asyncio.get_running_loop().run_in_executor(self._executor, self._timed, fn, arg)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
