"""The Spark computes: local mode (`spark`), a standalone cluster (`spark://HOST:PORT`), Spark Connect (`sc://`).

The training script runs in a child process on this machine as with `local` (see `conveyor.compute.process`); it
is the Spark driver (or the Connect client), and `ctx.spark()` returns a session on the environment's engine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.compute.base import TrainingResult, Writer
from conveyor.compute.process import run_training_process
from conveyor.config import Environment
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "Install it with: pip install 'conveyor[spark]'"


def session_builder() -> SparkSession.Builder:
    """`SparkSession.builder`, or a `ConfigError` naming the extra to install."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("ctx.spark() needs PySpark, which is not installed", hint=INSTALL_HINT) from None
    return SparkSession.builder


def app_name(environment: Environment) -> str:
    return f"{environment.project.name}-{environment.name}"


class SparkCompute:
    """What the Spark computes share: training in a child process that drives Spark."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        return run_training_process(environment, args, out, err)

    def spark_session(self, environment: Environment) -> SparkSession:
        return self.builder(environment).getOrCreate()

    def builder(self, environment: Environment) -> SparkSession.Builder:
        raise NotImplementedError


class SparkLocal(SparkCompute):
    """`compute = "spark"`: Spark in local mode, in the training process's JVM (`CONVEYOR_SPARK_MASTER` may
    narrow it, e.g. `local[2]`)."""

    def __init__(self, setting: str = "spark") -> None:
        super().__init__(setting)

    def builder(self, environment: Environment) -> SparkSession.Builder:
        return (
            session_builder()
            .appName(app_name(environment))
            .master(os.environ.get("CONVEYOR_SPARK_MASTER", "local[*]"))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.driver.memory", os.environ.get("CONVEYOR_SPARK_DRIVER_MEMORY", "2g"))
        )


class SparkCluster(SparkCompute):
    """`compute = "spark://HOST:PORT"`: a Spark standalone cluster's master; the tasks run on its workers'
    executors, the driver in the training process."""

    def builder(self, environment: Environment) -> SparkSession.Builder:
        return (
            session_builder()
            .appName(app_name(environment))
            .master(self.setting)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", os.environ.get("CONVEYOR_SPARK_DRIVER_MEMORY", "2g"))
        )


class SparkConnect(SparkCompute):
    """`compute = "sc://HOST:PORT"`: a Spark Connect server (what Databricks Connect speaks); the training process
    is a thin client and the plans run on the server."""

    def builder(self, environment: Environment) -> SparkSession.Builder:
        return session_builder().appName(app_name(environment)).remote(self.setting)
