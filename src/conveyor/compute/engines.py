"""Choosing the engine of an environment from the `COMPUTES` table, and the two doors through it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

from conveyor.compute.hadoop import lake_hadoop_settings
from conveyor.config.computes import compute_of
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import SparkSession

    from conveyor.compute.base import Compute, TrainingResult, Writer
    from conveyor.config import Environment


def compute_named(setting: str) -> Compute:
    """The engine a `compute` setting names, looked up in `COMPUTES`."""
    entry = compute_of(setting)  # the project file is validated against the same table; this guards other callers
    try:
        engine = entry.load()
    except ImportError as exc:  # an engine whose library is not installed (conveyor's own modules import lazily)
        if entry.extra is None or (exc.name or "").startswith("conveyor"):
            raise
        raise ConfigError(
            f"compute = {setting!r} needs a library that is not installed ({exc.name})",
            hint=f"Install it with: pip install 'conveyor[{entry.extra}]'",
        ) from None
    return cast("Compute", cast("type", engine)(setting))


def compute_for(environment: Environment) -> Compute:
    """The engine the environment's `compute` setting names."""
    return compute_named(environment.compute)


def train(
    environment: Environment,
    args: Sequence[str] | None = None,
    out: Writer = sys.stdout.write,
    err: Writer = sys.stderr.write,
) -> TrainingResult:
    """Run the project's training script on the environment's compute and register what it asked for.

    `conveyor train` is this function. A failing script raises `CheckFailed` and registers nothing.
    """
    return compute_for(environment).train(environment, list(args or []), out, err)


def spark_session(environment: Environment) -> SparkSession:
    """A SparkSession on the environment's compute, with its lake credentials set (what `ctx.spark()` returns)."""
    app_name = f"{environment.project.name}-{environment.name}"
    return compute_for(environment).spark_session(app_name, lake_hadoop_settings(environment))
