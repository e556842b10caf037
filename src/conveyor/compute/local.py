"""`compute = "local"`: training in a process on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.compute.process import run_training_process

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pyspark.sql import SparkSession

    from conveyor.compute.base import TrainingResult, Writer
    from conveyor.config import Environment


class LocalCompute:
    """`compute = "local"`: the script runs in a process on this machine; `ctx.spark()` is Spark in local mode."""

    def __init__(self, setting: str = "local") -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        return run_training_process(environment, args, out, err)

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> SparkSession:
        from conveyor.compute.spark import SparkLocal

        return SparkLocal().spark_session(app_name, hadoop_settings)
