"""The `Compute` protocol: one engine that runs a project's training script for an environment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conveyor.config import Environment

Writer = Callable[[str], object]


@dataclass
class TrainingResult:
    """What a training run produced: the MLflow run and the model versions it registered."""

    environment: str
    run_id: str
    registered: list[dict[str, Any]]


class Compute(Protocol):
    """An engine named by an environment's `compute` setting (see `conveyor.config.computes.COMPUTES`).

    `train` runs the project's training script against the environment and registers what it asked for;
    `spark_session` is what `ctx.spark()` returns inside that script.
    """

    def __init__(self, setting: str) -> None: ...

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        """Run the training script; raise `CheckFailed` when it fails (nothing is registered then)."""
        ...

    def spark_session(self, environment: Environment) -> SparkSession:
        """A SparkSession on this engine, with the environment's lake credentials set."""
        ...
