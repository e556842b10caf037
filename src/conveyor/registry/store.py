"""One environment's MLflow registry: registering models with lineage tags, finding and downloading versions."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.registry.files import check_regular_tree, copy_regular_tree
from conveyor.registry.mlflow_client import quiet_mlflow
from conveyor.registry.model_version import ModelVersionInfo, parse_model_spec
from conveyor.registry.reading import EmptyStore, open_reader

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from conveyor.config import Environment
    from conveyor.registry.reader import RegistryReader

__all__ = [
    "ModelRegistry",
    "ModelVersionInfo",
    "materialize",
    "parse_model_spec",
    "pinned_requirements",
    "quiet_mlflow",
]

DEFAULT_REQUIREMENTS = ("numpy", "scikit-learn")


class ModelRegistry:
    """The model registry of one environment (any MLflow tracking URI; sqlite in the project by default)."""

    def __init__(self, environment: Environment) -> None:
        quiet_mlflow()
        self.environment = environment
        self.uri = environment.registry_uri
        self._reader: RegistryReader | None = None
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        """MLflow's client on this registry (made once: opening a store imports and checks a lot)."""
        with self._lock:
            if self._client is None:
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            return self._client

    def prepare(self) -> None:
        """Import MLflow's model logging and open the store now, e.g. in a thread while a training script runs, so
        that registering afterwards costs only the registering."""
        import mlflow.pyfunc  # noqa: F401  (what log_pyfunc uses)

        self.experiment_id()

    def experiment_id(self) -> str:
        """The environment's experiment (the project's name), created on first use."""
        client = self.client
        with self._lock:
            if self._experiment_id is None:
                self._experiment_id = self._find_or_create_experiment(client)
            return self._experiment_id

    def _find_or_create_experiment(self, client: MlflowClient) -> str:
        name = self.environment.project.name
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = None
        if self.uri.startswith("sqlite:") or self.uri.startswith("file:") or "://" not in self.uri:
            self.environment.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.environment.artifact_root.as_uri()
        return str(client.create_experiment(name, artifact_location=location))

    # --- reading (without MLflow's client where the store allows: see registry.reading) ---------------------
    @property
    def reader(self) -> RegistryReader:
        """The way this registry is read; chosen again while its store does not exist yet."""
        if self._reader is None or isinstance(self._reader, EmptyStore):
            self._reader = open_reader(self.uri)
        return self._reader

    def model_names(self) -> list[str]:
        return self.reader.model_names()

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """The model's versions, newest first, each with its tags and aliases."""
        return self.reader.versions(name)

    def resolve(self, spec: str | None = None) -> ModelVersionInfo:
        """The version `spec` names, with its run's metrics and params; without a spec, the newest version of the
        environment's only model."""
        reader = self.reader
        if spec is None:
            names = reader.model_names()
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
        if alias:
            found = reader.version_by_alias(name, alias)
        elif version:
            found = reader.version(name, version)
        else:
            newest = reader.versions(name)
            found = newest[0] if newest else None
        if found is None:
            known = ", ".join(reader.model_names()) or "none"
            raise NotFoundError(
                f"model {spec!r} is not in the {self.environment.name} registry",
                hint=f"Registered models: {known}. List versions with: conveyor models list --env "
                f"{self.environment.name}",
            )
        if not found.run_id:
            return found
        return found.with_run(*reader.run_data(found.run_id))

    def download(self, info: ModelVersionInfo, dest: Path) -> Path:
        """Download the version's MLflow model folder (MLmodel, code/, data/) into `dest`; returns that folder."""
        from mlflow.artifacts import download_artifacts

        dest.mkdir(parents=True, exist_ok=True)
        # Where the version's files are, asked of this registry (not of MLflow's process-wide registry URI, which
        # whatever registered last in this process may have set).
        location = self.client.get_model_version_download_uri(info.name, info.version)
        return Path(download_artifacts(artifact_uri=location, dst_path=str(dest), tracking_uri=self.uri))

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
            copy_regular_tree(files, data, "register_model")
            for folder in code:
                if folder.is_dir():
                    check_regular_tree(folder, "the project's inference code")
            info = mlflow.pyfunc.log_model(
                name="model",
                loader_module="conveyor_pyfunc",
                data_path=str(data),
                code_paths=[str(loader), str(score), *(str(c) for c in code)],
                pip_requirements=requirements,
            )
        return str(info.model_uri)

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
                copy_regular_tree(item, target, f"model {info.name}/{info.version}")
            else:
                shutil.copy2(item, target)
        copy_regular_tree(model_dir / "data" / "model", staging / "model", f"model {info.name}/{info.version}")
        described = {"model": {"name": info.name, "version": info.version, "run_id": info.run_id, "tags": info.tags}}
        (staging / "registered-model.json").write_text(json.dumps(described, indent=2))
        (staging / ".complete").write_text(f"{info.name}/{info.version}\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
    return dest
