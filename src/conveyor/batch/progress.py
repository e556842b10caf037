"""How a batch job reports progress: the engine says what it counts and how far it is; the caller shows it."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class ProgressUnit(StrEnum):
    """What `done` counts: rows scored, bytes of input read, or Spark tasks finished."""

    ROWS = "rows"
    BYTES = "bytes"
    TASKS = "tasks"


class BatchProgress(Protocol):
    """Receives a job's progress. `total` is None when unknown, and `start` comes again when an engine learns it
    (Spark knows its task count once the job starts); `rows` is the rows scored so far, when known."""

    def start(self, total: int | None, unit: ProgressUnit) -> None: ...

    def update(self, done: int, rows: int | None = None) -> None: ...

    def finish(self, rows: int) -> None: ...


class NoProgress:
    """Progress nobody watches."""

    def start(self, total: int | None, unit: ProgressUnit) -> None:
        pass

    def update(self, done: int, rows: int | None = None) -> None:
        pass

    def finish(self, rows: int) -> None:
        pass
