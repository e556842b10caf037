"""Batch engines: each is one module and one entry in `ENGINES`, and runs a `BatchJob` into its staging folder."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, cast

from conveyor.errors import ConveyorError
from conveyor.plugins import Entry, Table

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.batch.datasets import InputDataset
    from conveyor.batch.output import StagedOutput
    from conveyor.batch.progress import BatchProgress
    from conveyor.config import Environment
    from conveyor.lake import Lake

DEFAULT_BATCH_ROWS = 65_536


class BatchEngine(StrEnum):
    """Where the rows are scored: in this process (Arrow) or on the environment's Spark (`mapInArrow`)."""

    LOCAL = "local"
    SPARK = "spark"

    @classmethod
    def named(cls, name: str) -> BatchEngine:
        try:
            return cls(name.strip().lower())
        except ValueError:
            raise ConveyorError(
                f"there is no batch engine {name!r}", hint=f"Use one of: {', '.join(e.value for e in cls)}."
            ) from None


@dataclass(frozen=True)
class BatchJob:
    """One scoring job: the package to score with, the input dataset, the staged output, the batch size."""

    environment: Environment
    lake: Lake
    package_dir: Path
    dataset: InputDataset
    output: StagedOutput
    batch_rows: int = DEFAULT_BATCH_ROWS


@dataclass(frozen=True)
class EngineRun:
    """What an engine reports: rows scored, the prediction columns it appended, and where it ran."""

    rows: int
    predictions: tuple[str, ...]
    details: dict[str, str]


class Engine(Protocol):
    def run(self, job: BatchJob, progress: BatchProgress) -> EngineRun: ...


# engine → its class, imported only when used (Spark's is heavy)
ENGINES: Table[Entry] = Table(
    Entry,
    (
        Entry(BatchEngine.LOCAL, "conveyor.batch.local:LocalEngine", "Arrow record batches in this process"),
        Entry(BatchEngine.SPARK, "conveyor.batch.spark:SparkEngine", "`mapInArrow` on the environment's Spark"),
    ),
)


def engine_for(engine: BatchEngine) -> Engine:
    """A new instance of the engine's implementation."""
    return cast("Engine", cast("type", ENGINES[engine].load())())
