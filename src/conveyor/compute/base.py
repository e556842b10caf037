"""The `Compute` protocol: one engine that runs a project's training script for an environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conveyor.config import Environment

Writer = Callable[[str], object]


@dataclass
class TrainingResult:
    """What a training run produced: the MLflow run, the model versions it registered, how it was confined."""

    environment: str
    run_id: str
    registered: list[dict[str, Any]]
    confinement: dict[str, object] = field(default_factory=dict)


class Compute(Protocol):
    """An engine named by an environment's `compute` setting (see `conveyor.config.computes.COMPUTES`).

    `train` runs the project's training script against the environment and registers what it asked for;
    `spark_session` is what `ctx.spark()` returns inside that script (it is called where the script runs, which
    holds no environment: it gets the app's name and the lake's Hadoop settings).
    """

    def __init__(self, setting: str) -> None: ...

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        """Run the training script; raise `CheckFailed` when it fails (nothing is registered then)."""
        ...

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> SparkSession:
        """A SparkSession on this engine with `hadoop_settings` (the lake's credentials) set."""
        ...
