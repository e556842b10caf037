"""`COMPUTES`: the engines an environment's `compute` may name, one entry each.

Each entry says how the setting is written, which class of `conveyor.compute` runs it (a `module:Class`
reference, imported only when an environment trains: PySpark or databricks-sdk are loaded only by the environments
that use them), and what the rest of conveyor needs to know of it: whether it is Spark, whether a training run
reaches it over the network, and which section of the environment and which extra it needs. The project file is
validated against this table. Adding an engine is one module in `conveyor.compute` and one entry here; a
distribution adds one under the entry-point group `conveyor.computes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import ConfigError
from conveyor.plugins import Entry, Table


@dataclass(frozen=True)
class ComputeEntry(Entry):
    """One engine: `name` is a bare name (`local`) or a URL scheme with its `://` (`spark://`).

    `spark`: the script's `ctx.spark()` is this engine's session. `network`: the training run reaches the engine
    over the network, so its sandbox keeps the network on. `section`: the `[environments.NAME.SECTION]` table it
    reads (with `example`, what to write there). `extra`: the `conveyor[EXTRA]` it needs installed."""

    form: str
    spark: bool = False
    network: bool = False
    section: str | None = None
    example: str = ""
    extra: str | None = None

    @property
    def is_scheme(self) -> bool:
        return self.name.endswith("://")

    def accepts(self, value: str) -> bool:
        """True when the setting `value` names this engine (a scheme needs something after it)."""
        if self.is_scheme:
            return value.startswith(self.name) and len(value) > len(self.name) and not any(c.isspace() for c in value)
        return value == self.name


COMPUTES: Table[ComputeEntry] = Table(
    ComputeEntry,
    (
        ComputeEntry("local", "conveyor.compute.local:LocalCompute", "a process on this machine", form="local"),
        ComputeEntry(
            "spark",
            "conveyor.compute.spark:SparkLocal",
            "Spark in local mode on this machine",
            form="spark",
            spark=True,
            network=True,
            extra="spark",
        ),
        ComputeEntry(
            "spark://",
            "conveyor.compute.spark:SparkCluster",
            "a Spark standalone cluster",
            form="spark://HOST:PORT",
            spark=True,
            network=True,
            extra="spark",
        ),
        ComputeEntry(
            "sc://",
            "conveyor.compute.spark:SparkConnect",
            "a Spark Connect server",
            form="sc://HOST:PORT",
            spark=True,
            network=True,
            extra="spark",
        ),
        ComputeEntry(
            "databricks",
            "conveyor.compute.databricks:DatabricksCompute",
            "a one-time Databricks job run (settings in [environments.NAME.databricks])",
            form="databricks",
            spark=True,
            network=True,
            section="databricks",
            extra="databricks",
            example='[environments.prod.databricks] with host = "https://adb-1234.5.azuredatabricks.net", '
            'upload_path = "/Volumes/main/default/conveyor" and cluster_id = "ID" (or job_cluster = {...} or '
            "serverless = true)",
        ),
    ),
    group="conveyor.computes",
)


def compute_entry(value: str) -> ComputeEntry | None:
    """The table's entry for a `compute` setting, or None when no engine accepts it."""
    return next((entry for entry in COMPUTES.values() if entry.accepts(value)), None)


def compute_of(value: str) -> ComputeEntry:
    """The table's entry for a `compute` setting; ConfigError naming the accepted settings otherwise."""
    entry = compute_entry(value)
    if entry is None:
        raise ConfigError(f"compute = {value!r} names no engine", hint=f"Accepted: {accepted_computes()}.")
    return entry


def accepted_computes() -> str:
    """How each accepted setting is written, for error messages and help: `local, spark, spark://HOST:PORT, ...`."""
    return ", ".join(entry.form for entry in COMPUTES.values())
