"""The contract of a registry reader: `RegistryReader`, and the `ReadPath` each reader names (which way it reads).

The readers are `registry.sqlite_tables`, `registry.rest` and `registry.mlflow_client`; `registry.reading` chooses
one for a URI.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.registry.model_version import ModelVersionInfo


class ReadPath(StrEnum):
    """Which way a registry is read."""

    SQLITE_TABLES = "sqlite-tables"
    REST = "rest"
    MLFLOW_CLIENT = "mlflow-client"


class RegistryReader(Protocol):
    """Read access to one registry. Versions come with their tags and every alias that points at them."""

    path: ReadPath
    reason: str  # why this reader was chosen

    def model_names(self) -> list[str]:
        """Registered models (MLflow prompts excluded), sorted."""
        ...

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """The model's versions, newest first (empty when the model does not exist)."""
        ...

    def version(self, name: str, version: str) -> ModelVersionInfo | None: ...

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None: ...

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        """The run's latest metrics and its params (empty when the run is gone)."""
        ...
