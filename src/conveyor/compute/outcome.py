"""A training outcome carried home from a remote engine: params, metrics, lineage and the model files.

On a Databricks cluster the script runs against a throwaway MLflow store; what it logged and the models it asked
for are written into a folder (`outcome.json` + `models/N/`), packed, and fetched by `conveyor train`, which
records them in the environment's own registry exactly as a local run does.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conveyor.compute.base import TrainingResult
from conveyor.compute.lineage import git_commit
from conveyor.compute.runner import register_models
from conveyor.config import Environment
from conveyor.errors import CheckFailed
from conveyor.registry.store import ModelRegistry
from conveyor.training.context import PendingRegistration

OUTCOME_FILE = "outcome.json"


@dataclass
class OutcomeModel:
    """A model the script asked to register: its name, its own tags and its folder inside the outcome."""

    name: str
    folder: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainingOutcome:
    """What a remote run produced, before anything is registered."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)
    models: list[OutcomeModel] = field(default_factory=list)

    def write(self, folder: Path, registrations: list[PendingRegistration]) -> None:
        """Write this outcome, with a copy of each pending model's files, into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.models = []
        for index, pending in enumerate(registrations):
            inside = f"models/{index}"
            shutil.copytree(pending.path, folder / inside)
            self.models.append(OutcomeModel(pending.name, inside, dict(pending.tags)))
        (folder / OUTCOME_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def read(cls, folder: Path) -> TrainingOutcome:
        data = json.loads((folder / OUTCOME_FILE).read_text())
        return cls(
            params={str(k): str(v) for k, v in data["params"].items()},
            metrics={str(k): float(v) for k, v in data["metrics"].items()},
            lineage={str(k): str(v) for k, v in data["lineage"].items()},
            models=[OutcomeModel(m["name"], m["folder"], m["tags"]) for m in data["models"]],
        )


def pack(folder: Path, archive: Path) -> Path:
    """`folder`'s content as a gzipped tar at `archive`."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=".")
    return archive


def unpack(archive: Path, folder: Path) -> Path:
    """Unpack an outcome archive into `folder`, refusing members that would land outside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        try:
            tar.extractall(folder, filter="data")
        except tarfile.FilterError as exc:
            raise CheckFailed(f"the training outcome {archive.name} holds an unsafe member: {exc}") from None
    return folder


def record_outcome(
    environment: Environment, folder: Path, run_tags: dict[str, str], run_name: str | None = None
) -> TrainingResult:
    """Record an unpacked outcome in the environment's registry: one MLflow run with its params and metrics, and
    each model logged as a pyfunc and registered with its lineage (git facts from this machine's work tree)."""
    import mlflow

    outcome = TrainingOutcome.read(folder)
    registry = ModelRegistry(environment)
    project = environment.project
    lineage = dict(outcome.lineage)
    commit, dirty = git_commit(project.root)
    if commit:
        lineage["git_commit"] = commit
        lineage["git_dirty"] = str(dirty).lower()
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    name = run_name or f"train-{environment.name}"
    with mlflow.start_run(experiment_id=registry.experiment_id(), run_name=name) as run:
        mlflow.set_tags({"conveyor.environment": environment.name, **run_tags})
        if outcome.params:
            mlflow.log_params(outcome.params)
        if outcome.metrics:
            mlflow.log_metrics(outcome.metrics)
        pending = [PendingRegistration(folder / m.folder, m.name, m.tags) for m in outcome.models]
        registered = register_models(registry, project, pending, lineage, outcome.metrics)
    return TrainingResult(environment.name, run.info.run_id, registered)
