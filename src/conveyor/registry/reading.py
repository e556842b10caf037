"""How conveyor reads an MLflow registry: the choice of reader (`registry.reader`'s contract) for a URI.

Reading is what people do dozens of times a day (`conveyor models list/show`, resolving `NAME@ALIAS` for a build
or a gate), so it avoids importing MLflow (seconds) where a documented, stable interface allows:

- `sqlite:///…` (the embedded default): MLflow's own tables, opened read-only with the standard library's sqlite3,
  after checking the store's Alembic revision against the ones whose layout conveyor knows
  (`registry.sqlite_tables.SUPPORTED_REVISIONS`); a store at any other revision is read by MLflow's client.
- `http(s)://…` (an MLflow tracking server): MLflow's documented REST API with httpx.
- anything else (databricks, a SQL database URL, workspaces, custom auth plugins): MLflow's client.

Writing (registering, aliases, downloads) always goes through MLflow's client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from conveyor.registry.reader import ReadPath, RegistryReader

if TYPE_CHECKING:
    from conveyor.registry.model_version import ModelVersionInfo

MLFLOW_ONLY_SETTINGS = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE", "MLFLOW_TRACKING_AUTH")


class EmptyStore:
    """A registry whose store does not exist yet: nothing is registered in it."""

    def __init__(self, reason: str) -> None:
        self.path = ReadPath.SQLITE_TABLES
        self.reason = reason

    def model_names(self) -> list[str]:
        return []

    def versions(self, name: str) -> list[ModelVersionInfo]:
        return []

    def version(self, name: str, version: str) -> ModelVersionInfo | None:
        return None

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        return None

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        return {}, {}


def _mlflow_only_setting() -> str | None:
    for name in MLFLOW_ONLY_SETTINGS:
        value = os.environ.get(name, "").strip().lower()
        if value and value not in ("0", "false", "no"):
            return name
    return None


def open_reader(uri: str) -> RegistryReader:
    """The reader for the registry at MLflow tracking URI `uri` (see the module's docstring for the choice)."""
    from conveyor.registry.mlflow_client import MlflowClientReader

    setting = _mlflow_only_setting()
    if setting:
        return MlflowClientReader(uri, reason=f"{setting} is set: only MLflow's client honours it")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme == "sqlite":
        from conveyor.registry.sqlite_tables import SUPPORTED_REVISIONS, SqliteTables, sqlite_file

        path = sqlite_file(uri)
        if path is None:
            return MlflowClientReader(uri, reason="an in-memory or unusual sqlite URI")
        if not path.exists():
            return EmptyStore(f"no MLflow store at {path} yet")  # reading does not create one
        tables = SqliteTables(path)
        revision = tables.revision()
        if revision in SUPPORTED_REVISIONS:
            return tables
        found = f"schema revision {revision!r}" if revision else "no MLflow schema revision"
        return MlflowClientReader(uri, reason=f"{found} in {path}: not a layout conveyor reads directly")
    if scheme in ("http", "https"):
        from conveyor.registry.rest import RestRegistry

        return RestRegistry(uri)
    return MlflowClientReader(uri, reason=f"{scheme or 'a local path'} registries are read by MLflow's client")
