"""Spark sessions for training: local mode by default, a cluster (spark://) or Spark Connect (sc://)."""

from __future__ import annotations

import os
from typing import Any

from conveyor.errors import ConfigError


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


def spark_session(compute: str, app_name: str, settings: dict[str, str] | None = None) -> Any:
    """A SparkSession for `compute`, named `app_name`, with `settings` (e.g. the lake's Hadoop credentials)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "ctx.spark() needs PySpark, which is not installed", hint="Install it with: pip install 'conveyor[spark]'"
        ) from None
    kind, url = spark_master(compute)
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(url) if kind == "remote" else builder.master(url)
    for key, value in (settings or {}).items():
        builder = builder.config(key, value)
    return (
        builder.config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", os.environ.get("CONVEYOR_SPARK_DRIVER_MEMORY", "2g"))
        .getOrCreate()
    )
