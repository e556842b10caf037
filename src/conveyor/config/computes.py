"""`COMPUTES`: the engines an environment's `compute` may name, one entry each.

Each entry says how the setting is written and which class of `conveyor.compute` runs it, as a `module:Class`
reference (the form of Python entry points). The project file is validated against this table, below the compute
room in the layering, so the classes are imported only when an environment trains: PySpark or databricks-sdk are
loaded only by the environments that use them. Adding an engine is one module in `conveyor.compute` and one entry
here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComputeEntry:
    """One engine: `key` is a bare name (`local`) or a URL scheme with its `://` (`spark://`)."""

    key: str
    form: str
    implementation: str
    about: str

    @property
    def is_scheme(self) -> bool:
        return self.key.endswith("://")

    def accepts(self, value: str) -> bool:
        """True when the setting `value` names this engine (a scheme needs something after it)."""
        if self.is_scheme:
            return value.startswith(self.key) and len(value) > len(self.key) and not any(c.isspace() for c in value)
        return value == self.key


COMPUTES: dict[str, ComputeEntry] = {
    entry.key: entry
    for entry in (
        ComputeEntry("local", "local", "conveyor.compute.local:LocalCompute", "a process on this machine"),
        ComputeEntry("spark", "spark", "conveyor.compute.spark:SparkLocal", "Spark in local mode on this machine"),
        ComputeEntry(
            "spark://", "spark://HOST:PORT", "conveyor.compute.spark:SparkCluster", "a Spark standalone cluster"
        ),
        ComputeEntry("sc://", "sc://HOST:PORT", "conveyor.compute.spark:SparkConnect", "a Spark Connect server"),
        ComputeEntry(
            "databricks",
            "databricks",
            "conveyor.compute.databricks:DatabricksCompute",
            "a one-time Databricks job run (settings in [environments.NAME.databricks])",
        ),
    )
}


def compute_entry(value: str) -> ComputeEntry | None:
    """The table's entry for a `compute` setting, or None when no engine accepts it."""
    return next((entry for entry in COMPUTES.values() if entry.accepts(value)), None)


def accepted_computes() -> str:
    """How each accepted setting is written, for error messages and help: `local, spark, spark://HOST:PORT, ...`."""
    return ", ".join(entry.form for entry in COMPUTES.values())
