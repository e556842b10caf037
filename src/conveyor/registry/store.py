"""One environment's MLflow registry: registering models with lineage tags, finding and downloading versions."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, NotFoundError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from conveyor.config import Environment

SPEC = re.compile(r"^(?:models:/)?(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[A-Za-z0-9_\-]+))?$")
DEFAULT_REQUIREMENTS = ("numpy", "scikit-learn")


def quiet_mlflow() -> None:
    """MLflow is chatty on import and on every run; conveyor reports what matters itself."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version as conveyor shows it."""

    name: str
    version: str
    run_id: str | None
    source: str
    created_at: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "created_at": self.created_at,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "metrics": dict(self.metrics),
            "params": dict(self.params),
        }


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """`name`, `name/3`, `name@prod` or `models:/name/3` → (name, version, alias)."""
    match = SPEC.match(spec.strip())
    if not match:
        raise ConveyorError(
            f"model reference {spec!r} is not understood",
            hint="Write NAME, NAME/VERSION, NAME@ALIAS or models:/NAME/VERSION (e.g. worst_regression/3).",
        )
    version = match["version"]
    return match["name"], None if version == "latest" else version, match["alias"]


class ModelRegistry:
    """The model registry of one environment (any MLflow tracking URI; sqlite in the project by default)."""

    def __init__(self, environment: Environment) -> None:
        quiet_mlflow()
        self.environment = environment
        self.uri = environment.registry_uri

    @property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self) -> str:
        """The environment's experiment (the project's name), created on first use."""
        name = self.environment.project.name
        client = self.client
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if self.uri.startswith("sqlite:") or self.uri.startswith("file:") or "://" not in self.uri:
            self.environment.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.environment.artifact_root.as_uri()
        return client.create_experiment(name, artifact_location=location)

    # --- reading -----------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str) -> list[ModelVersionInfo]:
        found = self.client.search_model_versions(f"name = '{name}'")
        return sorted((self._info(v, with_run=False) for v in found), key=lambda v: int(v.version), reverse=True)

    def resolve(self, spec: str | None = None) -> ModelVersionInfo:
        """The version `spec` names; without a spec, the newest version of the environment's only model."""
        from mlflow.exceptions import MlflowException

        if spec is None:
            names = self.model_names()
            if not names:
                raise NotFoundError(
                    f"no model is registered in the {self.environment.name} registry yet",
                    hint=f"Train one with: conveyor train --env {self.environment.name}",
                )
            if len(names) > 1:
                raise ConveyorError(
                    f"the {self.environment.name} registry holds several models: {', '.join(names)}",
                    hint="Name one with --model NAME[/VERSION|@ALIAS].",
                )
            spec = names[0]
        name, version, alias = parse_model_spec(spec)
        client = self.client
        try:
            if alias:
                found = client.get_model_version_by_alias(name, alias)
            elif version:
                found = client.get_model_version(name, version)
            else:
                versions = self.versions(name)
                if not versions:
                    raise MlflowException(f"no versions of {name}")
                found = client.get_model_version(name, versions[0].version)
        except MlflowException:
            known = ", ".join(self.model_names()) or "none"
            raise NotFoundError(
                f"model {spec!r} is not in the {self.environment.name} registry",
                hint=f"Registered models: {known}. List versions with: conveyor models list --env "
                f"{self.environment.name}",
            ) from None
        return self._info(found, with_run=True)

    def _info(self, version: Any, *, with_run: bool) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if with_run and version.run_id:
            run = self.client.get_run(version.run_id)
            metrics, params = dict(run.data.metrics), dict(run.data.params)
        return ModelVersionInfo(
            name=version.name,
            version=str(version.version),
            run_id=version.run_id,
            source=version.source,
            created_at=int(version.creation_timestamp or 0),
            tags=dict(version.tags or {}),
            aliases=tuple(getattr(version, "aliases", None) or ()),
            metrics=metrics,
            params=params,
        )

    def download(self, info: ModelVersionInfo, dest: Path) -> Path:
        """Download the version's MLflow model folder (MLmodel, code/, data/) into `dest`; returns that folder."""
        from mlflow.artifacts import download_artifacts

        dest.mkdir(parents=True, exist_ok=True)
        uri = f"models:/{info.name}/{info.version}"
        os.environ["MLFLOW_TRACKING_URI"] = self.uri
        os.environ["MLFLOW_REGISTRY_URI"] = self.uri
        return Path(download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=self.uri))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    # --- writing -----------------------------------------------------------------------------------------
    def log_pyfunc(self, files: Path, score: Path, code: list[Path], requirements: list[str]) -> str:
        """Log `files` as the data of an MLflow pyfunc whose code is `score.py` + the inference code.

        Must run inside an active MLflow run; returns the logged model's URI.
        """
        import mlflow.pyfunc

        from conveyor.registry import pyfunc_loader

        with tempfile.TemporaryDirectory(prefix="conveyor-model-") as tmp:
            loader = Path(tmp) / "conveyor_pyfunc.py"
            shutil.copyfile(pyfunc_loader.__file__, loader)
            data = Path(tmp) / "model"
            shutil.copytree(files, data)
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module="conveyor_pyfunc",
                data_path=str(data),
                code_paths=[str(loader), str(score), *(str(c) for c in code)],
                pip_requirements=requirements,
            )
        return info.model_uri

    def register(self, model_uri: str, name: str, tags: dict[str, str]) -> ModelVersionInfo:
        import mlflow

        mlflow.set_registry_uri(self.uri)
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints its own progress lines
            version = mlflow.register_model(model_uri, name, tags=tags)
        return self.resolve(f"{name}/{version.version}")


def pinned_requirements(names: tuple[str, ...] = DEFAULT_REQUIREMENTS) -> list[str]:
    """`name==installed version` for each name that is installed."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def materialize(uri: str, environment: Environment | str, cache_dir: Path) -> Path:
    """Turn `models:/NAME/VERSION|@ALIAS` into a package-layout folder (score.py, code, model/) under `cache_dir`.

    An alias is resolved first, so the folder is keyed by the registry, name and version it names now; a folder
    made before is reused only when complete.
    """
    import hashlib

    if isinstance(environment, str):
        from conveyor.config import load_project

        environment = load_project().environment(environment)
    registry = ModelRegistry(environment)
    info = registry.resolve(uri)
    key = hashlib.sha256(f"{registry.uri}\0{info.name}\0{info.version}".encode()).hexdigest()[:16]
    dest = cache_dir / f"{info.name}-{info.version}-{key}"
    if (dest / ".complete").exists():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-download-", dir=cache_dir) as tmp:
        model_dir = registry.download(info, Path(tmp) / "mlflow")
        staging = Path(tmp) / "package"
        staging.mkdir()
        for item in (model_dir / "code").iterdir():
            if item.name == "conveyor_pyfunc.py":
                continue
            target = staging / item.name
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)
        shutil.copytree(model_dir / "data" / "model", staging / "model")
        described = {"model": {"name": info.name, "version": info.version, "run_id": info.run_id, "tags": info.tags}}
        (staging / "registered-model.json").write_text(json.dumps(described, indent=2))
        (staging / ".complete").write_text(f"{info.name}/{info.version}\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest
