"""A worker's watchdog: a thread that notices when score.py has stopped answering.

- A call into score.py (in the thread pool) still running at twice the scoring timeout: its request already got
  a 504, but the thread cannot be stopped. The worker is retired (`on_stuck`): it stops accepting, finishes what
  it has in flight, and the supervisor starts a fresh one.
- The event loop itself blocked for longer than the timeout (score.py called inline and hanging): nothing in the
  worker can answer any more, so the process exits at once and the supervisor replaces it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from conveyor.serving.calls import CallPolicy

log = logging.getLogger("conveyor.serving")

EXIT_BLOCKED = 4  # a worker's exit code when its event loop stayed blocked past the timeout
TICK = 0.25


class Watchdog:
    """Checks a worker's calls and event loop every `TICK` seconds from a thread of its own."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, policy: CallPolicy, timeout: float, on_stuck: Callable[[str], None]
    ) -> None:
        self.loop, self.policy, self.timeout, self.on_stuck = loop, policy, timeout, on_stuck
        self.beat = time.monotonic()
        self._stop = threading.Event()
        self._retired = False
        self._thread = threading.Thread(target=self._watch, name="conveyor-watchdog", daemon=True)
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._heartbeat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _heartbeat(self) -> None:
        self.beat = time.monotonic()
        if not self._stop.is_set():
            self._handle = self.loop.call_later(TICK, self._heartbeat)

    def _watch(self) -> None:
        while not self._stop.wait(TICK):
            blocked = time.monotonic() - self.beat
            if blocked > max(self.timeout, 2 * TICK):
                log.critical(
                    "worker %d: its event loop has been blocked for %.1f s (a call into score.py on the loop?); "
                    "exiting so that a fresh worker replaces it",
                    os.getpid(),
                    blocked,
                )
                logging.shutdown()
                os._exit(EXIT_BLOCKED)
            running = self.policy.oldest_running()
            if not self._retired and running > 2 * self.timeout:
                self._retired = True
                reason = f"a call into score.py has run for {running:.1f} s (the timeout is {self.timeout:g} s)"
                self.loop.call_soon_threadsafe(self.on_stuck, reason)
