"""`compute = "databricks"`: a one-time Databricks job run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.compute.base import TrainingResult, Writer
from conveyor.config import Environment
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class DatabricksCompute:
    """Not built yet: refused plainly."""

    def __init__(self, setting: str = "databricks") -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        raise ConfigError(
            f"environment {environment.name!r} asks for compute 'databricks', which conveyor cannot run yet",
            hint="Use compute = 'local', 'spark', 'spark://HOST:PORT' or 'sc://HOST:PORT' for this environment.",
        )

    def spark_session(self, environment: Environment) -> SparkSession:
        raise ConfigError("compute 'databricks' cannot run yet")
