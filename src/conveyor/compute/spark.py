"""The Spark computes: local mode (`spark`), a standalone cluster (`spark://HOST:PORT`), Spark Connect (`sc://`).

The training script runs in a child process on this machine as with `local` (see `conveyor.compute.process`); it
is the Spark driver (or the Connect client), and `ctx.spark()` returns a session on the environment's engine.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from conveyor.compute.hadoop import REDACTION_REGEX
from conveyor.compute.process import run_training_process
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pyspark.sql import SparkSession

    from conveyor.compute.base import TrainingResult, Writer
    from conveyor.config import Environment

INSTALL_HINT = "Install it with: pip install 'conveyor[spark]'"


def session_builder() -> SparkSession.Builder:
    """`SparkSession.builder`, or a `ConfigError` naming the extra to install."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("ctx.spark() needs PySpark, which is not installed", hint=INSTALL_HINT) from None
    return SparkSession.builder


def with_lake_settings(session: SparkSession, settings: Mapping[str, str]) -> SparkSession:
    """Set the lake's Hadoop settings on the session (and, in a local JVM, on its Hadoop configuration for the
    RDD API); read through Spark Connect or on Databricks they apply to the session's DataFrame reads."""
    for key, value in settings.items():
        session.conf.set(key, value)
    context = getattr(session, "_jsc", None)  # absent on a Spark Connect session
    if context is not None and settings:
        hadoop = context.hadoopConfiguration()
        for key, value in settings.items():
            hadoop.set(key, value)
    return session


def classic_builder(app_name: str, master: str) -> SparkSession.Builder:
    """A builder for a driver in this process: no UI, no progress bar, credentials masked in Spark's logs."""
    return (
        session_builder()
        .appName(app_name)
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.redaction.regex", REDACTION_REGEX)
        .config("spark.driver.memory", os.environ.get("CONVEYOR_SPARK_DRIVER_MEMORY", "2g"))
    )


class SparkCompute(ABC):
    """What the Spark computes share: training in a child process that drives Spark; each says how its session
    is built."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        return run_training_process(environment, args, out, err)

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> SparkSession:
        return with_lake_settings(self.builder(app_name).getOrCreate(), hadoop_settings)

    @abstractmethod
    def builder(self, app_name: str) -> SparkSession.Builder:
        """The session builder for this kind of Spark (master URL or Connect remote)."""


class SparkLocal(SparkCompute):
    """`compute = "spark"`: Spark in local mode, in the training process's JVM (`CONVEYOR_SPARK_MASTER` may
    narrow it, e.g. `local[2]`)."""

    def __init__(self, setting: str = "spark") -> None:
        super().__init__(setting)

    def builder(self, app_name: str) -> SparkSession.Builder:
        master = os.environ.get("CONVEYOR_SPARK_MASTER", "local[*]")
        return classic_builder(app_name, master).config("spark.sql.shuffle.partitions", "4")


class SparkCluster(SparkCompute):
    """`compute = "spark://HOST:PORT"`: a Spark standalone cluster's master; the tasks run on its workers'
    executors, the driver in the training process."""

    def builder(self, app_name: str) -> SparkSession.Builder:
        return classic_builder(app_name, self.setting)


class SparkConnect(SparkCompute):
    """`compute = "sc://HOST:PORT"`: a Spark Connect server (what Databricks Connect speaks); the training process
    is a thin client and the plans run on the server."""

    def builder(self, app_name: str) -> SparkSession.Builder:
        return session_builder().appName(app_name).remote(self.setting)
