"""A training outcome carried home from a remote engine: what the script logged, its lineage and the model files.

On a Databricks cluster the task runs the script as `conveyor train` does here (a confined child answered by a
broker), but instead of registering it writes the outcome into a folder (`outcome.json` + `models/N/`), packed
for `conveyor train` to fetch; this machine then logs the run and registers the models in the environment's
registry exactly as a local run does (`log_run`).
"""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.compute.base import TrainingResult
from conveyor.compute.child import FinishedScript, run_settings
from conveyor.compute.lineage import git_commit
from conveyor.compute.recording import log_run
from conveyor.errors import CheckFailed
from conveyor.training.broker import PendingRegistration, RunRecord
from conveyor.training.sandbox import Confinement

if TYPE_CHECKING:
    from conveyor.config import Environment

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

    script: str
    started: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, timestamp ms, step
    tags: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)
    models: list[OutcomeModel] = field(default_factory=list)

    @classmethod
    def of(cls, run: FinishedScript) -> TrainingOutcome:
        record = run.record
        return cls(
            Path(run.settings.script).name,
            run.started,
            dict(record.params),
            list(record.metrics),
            dict(record.tags),
            dict(run.lineage),
        )

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
            script=str(data["script"]),
            started=int(data["started"]),
            params={str(k): str(v) for k, v in data["params"].items()},
            metrics=[(str(k), float(v), int(t), int(s)) for k, v, t, s in data["metrics"]],
            tags={str(k): str(v) for k, v in data["tags"].items()},
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


def record_outcome(environment: Environment, folder: Path, run_tags: dict[str, str]) -> TrainingResult:
    """Log an unpacked outcome as the environment's MLflow run and register its models, with the lineage the
    remote run computed and the git facts of this machine's work tree (the code that was uploaded)."""
    outcome = TrainingOutcome.read(folder)
    project = environment.project
    lineage = dict(outcome.lineage)
    lineage.pop("git_commit", None), lineage.pop("git_dirty", None)
    commit, dirty = git_commit(project.root)
    if commit:
        lineage["git_commit"] = commit
        lineage["git_dirty"] = str(dirty).lower()
    registrations = [PendingRegistration(folder / m.folder, m.name, m.tags) for m in outcome.models]
    record = RunRecord(dict(outcome.params), list(outcome.metrics), {**outcome.tags, **run_tags}, registrations)
    settings = run_settings(environment, project.root / outcome.script, [], folder)
    sandbox = lineage.get("training_sandbox", "")
    run = FinishedScript(0, settings, record, lineage, outcome.started, Confinement(sandbox, network=True))
    run_id, registered = log_run(environment, run, ok=True)
    return TrainingResult(environment.name, run_id, registered, {"sandbox": sandbox})
