"""Adaptive batching: concurrent single requests gathered into one `run_batch()` call.

A batch closes when it is full (`max_batch_size`), or as soon as no other request is still arriving (its body
not yet read): everything that became ready in the same event-loop turn rides together, and a lone request
waits for nothing. While a request's body is still arriving, the batch waits for it at most `max_wait_ms`.
One batch runs at a time; requests that come in meanwhile form the next one. If `run_batch()` raises or
returns the wrong number of results, the batch is re-run request by request with `run()`, so one bad request
fails alone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.serving.calls import CallPolicy
    from conveyor.serving.metrics import ServingMetrics

Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


def run_each(run: Callable[[Any], Any], items: list[Any]) -> list[Outcome]:
    """`run()` on each item, each failure kept apart."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append((True, run(item)))
        except Exception as exc:  # reported per record
            outcomes.append((False, exc))
    return outcomes


class Batcher:
    """Gathers single requests into batches for `run_batch`, with per-request fallback to `run`."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        run: Callable[[Any], Any],
        policy: CallPolicy,
        metrics: ServingMetrics,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.run_batch, self.run, self.policy, self.metrics = run_batch, run, policy, metrics
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.arriving = 0
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._oldest = 0.0
        self._busy = False
        self._started = 0.0  # loop time the running batch started
        self._generation = 0  # bumped when a running batch is abandoned
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None

    def arrive(self) -> None:
        """A request has started whose body is not read yet: a batch may wait for it."""
        self.arriving += 1

    def leave(self) -> None:
        """A request that arrived will not be submitted after all (bad input, disconnect)."""
        self.arriving -= 1
        self._check()

    def submit(self, item: Any) -> asyncio.Future[Any]:
        """Queue one request (which had `arrive()`d); the future resolves to its result or raises its error."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            self._oldest = loop.time()
        self._pending.append((item, future))
        self.arriving -= 1
        self._check()
        return future

    def _check(self) -> None:
        if not self._pending or self._busy or self._scheduled:
            return
        loop = asyncio.get_running_loop()
        if len(self._pending) >= self.max_batch_size or self.arriving <= 0:
            self._scheduled = True
            loop.call_soon(self._flush)
        elif self._timer is None:
            self._timer = loop.call_at(self._oldest + self.max_wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._pending and not self._busy and not self._scheduled:
            self._scheduled = True
            self._flush()

    def _flush(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._pending:
            return
        batch = self._pending[: self.max_batch_size]
        del self._pending[: self.max_batch_size]
        if self._pending:
            self._oldest = asyncio.get_running_loop().time()
        self.metrics.observe_batch(len(batch))
        items = [item for item, _ in batch]
        if self.policy.inline:
            self._deliver(batch, self.policy.call_inline(self.execute, items))
            return
        self._busy = True
        self._started = asyncio.get_running_loop().time()
        generation = self._generation
        running = self.policy.submit(self.execute, items)
        running.add_done_callback(lambda done: self._finish(batch, done, generation))

    def abandon(self, older_than: float) -> None:
        """Stop waiting for a running batch that started more than `older_than` seconds ago (its requests have
        timed out): the next batch may start in another thread instead of queueing behind it."""
        if self._busy and asyncio.get_running_loop().time() - self._started >= older_than:
            self._busy = False
            self._generation += 1
            self._check()

    def _finish(self, batch: list[tuple[Any, asyncio.Future[Any]]], done: asyncio.Future[Any], generation: int) -> None:
        if generation == self._generation:
            self._busy = False
        exc = RuntimeError("the server is stopping") if done.cancelled() else done.exception()
        outcomes = [(False, exc)] * len(batch) if exc is not None else done.result()
        self._deliver(batch, outcomes)

    def _deliver(self, batch: list[tuple[Any, asyncio.Future[Any]]], outcomes: list[Outcome]) -> None:
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._check()

    def execute(self, items: list[Any]) -> list[Outcome]:
        """`run_batch(items)`; if it raises or miscounts, `run()` on each item alone."""
        try:
            results = self.run_batch(items)
            if isinstance(results, list | tuple) and len(results) == len(items):
                return [(True, result) for result in results]
        except Exception:  # noqa: S110 -- any failure falls back to per-request calls, counted below
            pass
        self.metrics.count_fallback()
        return run_each(self.run, items)
