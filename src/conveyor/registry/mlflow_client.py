"""Reading a registry through MLflow's own client: any tracking URI MLflow understands, at any schema revision.

The reader of last resort (see `registry.reading`), and the reference the faster readers are compared against.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import ConveyorError
from conveyor.registry.model_version import ModelVersionInfo, newest_first
from conveyor.registry.reader import ReadPath

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlflow import MlflowClient

PAGE = 1000  # the most registered models MLflow's server returns per page
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # how MLflow says "no such model/alias/run"
T = TypeVar("T")


class NotFound(Exception):
    """MLflow said the model, version, alias or run does not exist."""


def quiet_mlflow() -> None:
    """MLflow is chatty on import and on every run; conveyor reports what matters itself."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def version_info(version: Any, aliases: dict[str, list[str]] | None = None) -> ModelVersionInfo:
    """An MLflow `ModelVersion` as conveyor shows it; `aliases` (version → names) fills in what searches leave out."""
    own = list(getattr(version, "aliases", None) or ())
    if aliases is not None:
        own = aliases.get(str(version.version), own)
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id or None,
        source=version.source or "",
        created_at=int(version.creation_timestamp or 0),
        tags={str(k): "" if v is None else str(v) for k, v in (version.tags or {}).items()},
        aliases=tuple(sorted(own)),
    )


class MlflowClientReader:
    """A registry read through `mlflow.MlflowClient`."""

    def __init__(self, uri: str, reason: str = "") -> None:
        self.uri = uri
        self.path = ReadPath.MLFLOW_CLIENT
        self.reason = reason or "MLflow's client"
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            quiet_mlflow()
            from mlflow import MlflowClient

            self._client = self._call(MlflowClient, tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(...)`, with MLflow's errors said as conveyor's (a missing thing is `NotFound`)."""
        from mlflow.exceptions import MlflowException

        try:
            return function(*args, **kwargs)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                raise NotFound from None
            raise ConveyorError(
                f"MLflow could not read the registry at {self.uri}: {exc.message}",
                hint=f"conveyor used MLflow's client here ({self.reason}). If a newer MLflow wrote this store, "
                "upgrade MLflow where conveyor runs: pip install -U mlflow",
            ) from None

    def _maybe(self, function: Callable[..., T], *args: Any) -> T | None:
        try:
            return self._call(function, *args)
        except NotFound:
            return None

    def model_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = self._call(self.client.search_registered_models, max_results=PAGE, page_token=token)
            names += [m.name for m in page]
            token = page.token
            if not token:
                return sorted(names)

    def _aliases(self, name: str) -> dict[str, list[str]]:
        model = self._maybe(self.client.get_registered_model, name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases if model else {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return by_version

    def versions(self, name: str) -> list[ModelVersionInfo]:
        found = []
        token: str | None = None
        while True:
            page = self._call(self.client.search_model_versions, f"name = '{name}'", page_token=token)
            found += list(page)
            token = page.token
            if not token:
                break
        if not found:
            return []
        aliases = self._aliases(name)  # MLflow's search leaves versions' aliases out
        return newest_first([version_info(v, aliases) for v in found])

    def version(self, name: str, version: str) -> ModelVersionInfo | None:
        found = self._maybe(self.client.get_model_version, name, version)
        return version_info(found) if found is not None else None

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        found = self._maybe(self.client.get_model_version_by_alias, name, alias)
        return version_info(found) if found is not None else None

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        run = self._maybe(self.client.get_run, run_id)
        if run is None:
            return {}, {}
        metrics = {k: (math.nan if v is None else float(v)) for k, v in run.data.metrics.items()}
        return metrics, dict(run.data.params)
