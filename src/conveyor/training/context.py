"""The training context: the environment's name, secrets, lake, metric logging and model registration.

A training script calls `conveyor.context()`; conveyor's runner has made the context before the script starts.
Model registration is deferred: it happens only after the script has finished without error, so a failing
script registers nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conveyor.config import Environment
    from conveyor.lake import Lake

SparkFactory = Callable[[], "SparkSession"]

_current: TrainingContext | None = None


@dataclass
class PendingRegistration:
    """A model the script asked to register; registered when the script ends well."""

    path: Path
    name: str
    tags: dict[str, str] = field(default_factory=dict)


class TrainingContext:
    """Everything a training script may use from conveyor, the same in every environment."""

    def __init__(
        self,
        environment: Environment,
        output_dir: Path,
        run_id: str | None = None,
        spark_factory: SparkFactory | None = None,
    ) -> None:
        """`spark_factory` makes the session `spark()` returns; the compute that runs the script provides it."""
        self.environment = environment
        self.output_dir = output_dir
        self.run_id = run_id
        self.registrations: list[PendingRegistration] = []
        self._spark_factory = spark_factory
        self._spark: SparkSession | None = None

    @property
    def env(self) -> str:
        """The environment's name: dev, stage, prod..."""
        return self.environment.name

    @property
    def state(self) -> str:
        return self.environment.state

    def secret(self, key: str) -> str:
        """A secret from the environment's store (masked in every output from now on)."""
        return self.environment.secret(key)

    @cached_property
    def lake(self) -> Lake:
        """The environment's data lake, confined to its root; every file read is recorded for lineage."""
        return self.environment.lake()

    def log_param(self, key: str, value: Any) -> None:
        import mlflow

        mlflow.log_param(key, value)

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(params)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        import mlflow

        mlflow.log_metric(key, float(value), step=step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def register_model(self, path: str | Path, name: str, tags: dict[str, str] | None = None) -> PendingRegistration:
        """Register the files under `path` as model `name` once the script has finished without error."""
        folder = Path(path)
        if not folder.is_dir() or not any(folder.iterdir()):
            raise ConveyorError(
                f"register_model: {folder} is not a folder with model files in it",
                hint="Write the model files into ctx.output_dir, then call ctx.register_model(ctx.output_dir, NAME).",
            )
        pending = PendingRegistration(folder, name, {str(k): str(v) for k, v in (tags or {}).items()})
        self.registrations.append(pending)
        return pending

    @property
    def uses_spark(self) -> bool:
        """True when the environment's compute is Spark (local mode, a cluster or Spark Connect)."""
        return self.environment.compute != "local"

    def spark_url(self, path: str) -> str:
        """The URL Spark reads a lake path by (a file, a folder or a glob); the files it names are recorded for
        lineage like files opened through ctx.lake."""
        self.lake.record_read(path)
        return self.lake.hadoop_url_of(path)

    def spark(self) -> SparkSession:
        """A SparkSession on this environment's compute: local mode, a cluster (spark://), Spark Connect (sc://) or
        the Databricks cluster the run is on."""
        if self._spark is None:
            if self._spark_factory is None:
                raise ConveyorError(
                    "ctx.spark() has no Spark engine in this context",
                    hint="Run the script with `conveyor train --env ENV`; the environment's compute provides Spark.",
                )
            self._spark = self._spark_factory()
        return self._spark

    def stop_spark(self) -> None:
        """Stop the Spark session the script used, if any."""
        if self._spark is not None:
            self._spark.stop()
            self._spark = None


def set_current_context(ctx: TrainingContext | None) -> None:
    global _current
    _current = ctx


def current_context() -> TrainingContext:
    if _current is None:
        hint = "Run the script with `conveyor train --env ENV`"
        if os.environ.get("CONVEYOR_ENV"):
            hint += f" (CONVEYOR_ENV={os.environ['CONVEYOR_ENV']} is set, but no run was started)"
        raise ConveyorError("conveyor.context() is only available inside `conveyor train`", hint=hint + ".")
    return _current
