"""Where a call into score.py runs: on the event loop (inline) or in a thread pool.

A thread hop costs tens of microseconds; the census model's run() takes a few. So in `auto` mode the policy
times every call and runs score.py inline while its calls stay fast (moving average under `inline_below`),
and in the thread pool once they are slow enough to stall other connections (over `offload_above`). It starts
in the thread pool, so a slow first call never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any, Literal

from conveyor.serving.metrics import ServingMetrics

Offload = Literal["auto", "always", "never"]


class CallPolicy:
    """Runs score.py calls inline or in threads, switching by their measured duration."""

    def __init__(
        self,
        metrics: ServingMetrics,
        offload: Offload = "auto",
        inline_below: float = 0.0005,
        offload_above: float = 0.002,
        threads: int = 8,
    ) -> None:
        if offload not in ("auto", "always", "never"):
            raise ValueError(f"offload must be auto, always or never, not {offload!r}")
        self.metrics = metrics
        self.offload = offload
        self.inline = offload == "never"
        self.inline_below = inline_below
        self.offload_above = offload_above
        self.average = offload_above  # seconds, exponential moving average of call durations
        self._executor: ThreadPoolExecutor | None = None
        self._threads = threads

    def _record(self, seconds: float) -> None:
        average = self.average = self.average * 0.9 + seconds * 0.1
        if self.offload == "auto":
            if self.inline:
                if average > self.offload_above:
                    self.inline = False
            elif average < self.inline_below:
                self.inline = True

    def _timed(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        start = perf_counter()
        try:
            return fn(arg)
        finally:
            self._record(perf_counter() - start)

    def call_inline(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        self.metrics.inline_calls += 1
        return self._timed(fn, arg)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """Run `fn(arg)` in the thread pool; the returned future resolves on the event loop."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="score")
        self.metrics.thread_calls += 1
        return asyncio.get_running_loop().run_in_executor(self._executor, self._timed, fn, arg)

    async def call(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        if self.inline:
            return self.call_inline(fn, arg)
        return await self.submit(fn, arg)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
