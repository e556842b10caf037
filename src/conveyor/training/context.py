"""The training context: what a training script gets from conveyor, and nothing more.

A training script calls `conveyor.context()`. It gets the environment's name and state, `ctx.secret(KEY)` for the
keys the project declares in `[training] secrets`, the confined lake (every read recorded for lineage), metric
and param logging, and model registration (deferred until the script ends well). It gets no environment or
project object, no secret store, no credentials and no inner filesystem: those stay in `conveyor train`'s own
process, which answers the script over one channel (see `broker`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.training.remote_errors import RemoteError, decode_error

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conveyor.training.channel import Client
    from conveyor.training.remote_lake import RemoteLake
    from conveyor.training.settings import RunSettings

SparkFactory = Callable[[str, dict[str, str]], "SparkSession"]
SecretMasking = Callable[[str, str, bool], None]  # (value, key, public)

_current: TrainingContext | None = None


class TrainingContext:
    """Everything a training script may use from conveyor, the same in every environment."""

    def __init__(
        self,
        client: Client,
        settings: RunSettings,
        remember: SecretMasking,
        spark_factory: SparkFactory | None = None,
    ) -> None:
        """`remember(value, key, public)` masks each secret the script gets in this process's output from then on
        (the process's redaction provides it); `spark_factory(app_name, hadoop_settings)` makes the session
        `spark()` returns (the compute that runs the script provides it)."""
        self._client = client
        self._settings = settings
        self._remember = remember
        self.output_dir = Path(settings.output_dir)
        self._spark_factory = spark_factory
        self._spark: SparkSession | None = None

    def __repr__(self) -> str:
        return f"TrainingContext(env={self.env!r})"

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return self._client.request(op, **fields)[0]
        except RemoteError as error:
            raise decode_error(error) from None

    @property
    def env(self) -> str:
        """The environment's name: dev, stage, prod..."""
        return self._settings.env

    @property
    def state(self) -> str:
        return self._settings.state

    def secret(self, key: str) -> str:
        """A secret the project declares for training (`[training] secrets`); masked in all output from now on."""
        answer = self._call("secret", key=key)
        value = str(answer["value"])
        self._remember(value, key, bool(answer.get("public")))  # public: by design (the state, created_by tags)
        return value

    @cached_property
    def lake(self) -> RemoteLake:
        """The environment's data lake, confined to its root; every file read is recorded for lineage."""
        from conveyor.training.remote_lake import RemoteLake

        return RemoteLake(self._client, self.env)

    def log_param(self, key: str, value: object) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        self._call("log.params", params={str(k): str(v) for k, v in params.items()})

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stamp = int(time.time() * 1000)
        self._call("log.metrics", metrics={str(k): float(v) for k, v in metrics.items()}, step=step, timestamp=stamp)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Tags on the run (the registered version gets its own tags from `register_model`)."""
        self._call("set.tags", tags={str(k): str(v) for k, v in tags.items()})

    def register_model(self, path: str | Path, name: str, tags: dict[str, str] | None = None) -> None:
        """Register the files under `path` (inside `ctx.output_dir`) as model `name` once the script has finished
        without error."""
        clean = {str(k): str(v) for k, v in (tags or {}).items()}
        self._call("register", path=str(Path(path).resolve()), name=name, tags=clean)

    @property
    def uses_spark(self) -> bool:
        """True when the environment's compute is Spark (local mode, a cluster or Spark Connect)."""
        return self._settings.spark

    def spark_url(self, path: str) -> str:
        """The URL Spark reads a lake path by (a file, a folder or a glob); the files it names are recorded for
        lineage like files opened through ctx.lake."""
        return self.lake.spark_url(path)

    def spark(self) -> SparkSession:
        """A SparkSession on this environment's compute: local mode, a cluster (spark://), Spark Connect (sc://) or
        the Databricks cluster the run is on; the lake's credentials are set on it as Hadoop settings."""
        if self._spark is None:
            if self._spark_factory is None:
                raise ConveyorError(
                    "ctx.spark() has no Spark engine in this context",
                    hint="Run the script with `conveyor train --env ENV`; the environment's compute provides Spark.",
                )
            settings = {str(k): str(v) for k, v in self._call("spark.settings")["settings"].items()}
            self._spark = self._spark_factory(f"{self._settings.project}-{self.env}", settings)
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
