"""Spark sessions for training: local mode by default, a cluster (spark://) or Spark Connect (sc://)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.config import Environment


def spark_master(compute: str) -> tuple[str, str]:
    """('master', URL) or ('remote', URL) for a compute setting."""
    if compute in ("local", "spark"):
        return "master", os.environ.get("CONVEYOR_SPARK_MASTER", "local[*]")
    if compute.startswith("spark://"):
        return "master", compute
    if compute.startswith("sc://"):
        return "remote", compute
    raise ConfigError(
        f"compute {compute!r} has no Spark session", hint="Use local, spark, spark://HOST:PORT or sc://HOST."
    )


def spark_session(environment: Environment):
    """A SparkSession named after the project and environment."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "ctx.spark() needs PySpark, which is not installed", hint="Install it with: pip install 'conveyor[spark]'"
        ) from None
    kind, url = spark_master(environment.compute)
    builder = SparkSession.builder.appName(f"{environment.project.name}-{environment.name}")
    builder = builder.remote(url) if kind == "remote" else builder.master(url)
    return (
        builder.config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", os.environ.get("CONVEYOR_SPARK_DRIVER_MEMORY", "2g"))
        .getOrCreate()
    )
