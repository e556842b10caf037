"""Training in a confined child process on this machine: the `local` compute, and the driver side of the Spark
computes (the script is the Spark driver, or the Spark Connect client).

This process holds the environment (its store, the lake's credentials, the registry). The child gets a scrubbed
environment, the run's facts, and one channel back here (see `conveyor.training.broker`); where the OS allows, it
runs in a sandbox that hides every secret file, every lake and the project's state (`conveyor.training.sandbox`).
After the script ends, this process logs its params and metrics (masked) to the environment's MLflow registry
and registers its models with lineage tags computed here, from the reads this process served.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from conveyor.compute.base import TrainingResult, Writer
from conveyor.compute.hadoop import lake_hadoop_settings
from conveyor.compute.lineage import git_commit
from conveyor.config import Environment
from conveyor.errors import CheckFailed, ConfigError
from conveyor.secrets import redaction
from conveyor.secrets.boundaries import mask_fields
from conveyor.secrets.scrubbing import minimal_environment
from conveyor.training.broker import RunRecord, TrainingBroker, run_folders
from conveyor.training.channel import FD_VARIABLE
from conveyor.training.sandbox import Confinement, confinement_for, plan_for
from conveyor.training.settings import RunSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from conveyor.registry.store import ModelRegistry


def _pump(stream: IO[str], write: Callable[[str], object]) -> None:
    for line in iter(stream.readline, ""):
        write(redaction.redact(line))


_registries: dict[str, ModelRegistry] = {}
_registries_lock = threading.Lock()


def _registry(environment: Environment) -> ModelRegistry:
    """The environment's registry, one per registry URI in this process (so one prepared while the script ran
    is the one that registers)."""
    from conveyor.registry.store import ModelRegistry

    with _registries_lock:
        uri = environment.registry_uri
        if uri not in _registries:
            _registries[uri] = ModelRegistry(environment)
        return _registries[uri]


def _warm_mlflow(environment: Environment) -> None:
    """Import MLflow's model logging and open the registry's store while the script runs (on the other core):
    registration needs both afterwards."""
    with contextlib.suppress(Exception):
        _registry(environment).prepare()


def training_script(environment: Environment) -> Path:
    """The project's training script, or a `ConfigError` saying how to point at it."""
    project = environment.project
    script = project.root / project.config.project.train
    if not script.is_file():
        raise ConfigError(
            f"training script {script} does not exist",
            hint=f"Create it, or point [project].train in {project.file} at your script.",
        )
    return script


def check_environment(environment: Environment) -> None:
    """Fail early, in this process, on a bad store, a missing secret or an unreadable setting."""
    environment.mask_every_secret()
    _ = environment.lake_url, environment.state, environment.created_by, environment.registry_uri


@dataclass
class FinishedScript:
    """A training script that has run: its exit status, what it logged and asked to register, its lineage."""

    code: int
    settings: RunSettings
    record: RunRecord
    lineage: dict[str, str]
    started: int
    confinement: Confinement


@contextlib.contextmanager
def confined_run(environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> Iterator[FinishedScript]:
    """Run the project's training script in a confined child; yields what it did while the run's folders (and the
    model files in them) still exist."""
    script = training_script(environment)
    confinement = confinement_for(environment)
    check_environment(environment)
    threading.Thread(target=_warm_mlflow, args=(environment,), daemon=True).start()
    started = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="conveyor-run-") as tmp:
        run_dir = Path(tmp).resolve()
        folders = run_folders(run_dir)
        settings = RunSettings.of(environment, script, args, folders["model"])
        code, record, lineage = _run_child(environment, settings, folders, confinement, out, err)
        yield FinishedScript(code, settings, record, lineage, started, confinement)


def run_training_process(environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
    """Run the script on this machine and register what it asked for; `CheckFailed` if it fails."""
    with confined_run(environment, args, out, err) as run:
        if run.code != 0:
            log_run(environment, run.settings, run.record, run.lineage, run.started, ok=False)
            raise CheckFailed(
                f"{Path(run.settings.script).name} failed in environment {environment.name!r} "
                f"(exit status {run.code}); nothing was registered",
                hint="The script's own traceback is above.",
            )
        run_id, registered = log_run(environment, run.settings, run.record, run.lineage, run.started, ok=True)
    return TrainingResult(environment.name, run_id, registered, run.confinement.to_dict())


def _run_child(
    environment: Environment,
    settings: RunSettings,
    folders: dict[str, Path],
    confinement: Confinement,
    out: Writer,
    err: Writer,
) -> tuple[int, RunRecord, dict[str, str]]:
    """Start the child (sandboxed where possible), serve its requests, and return its exit status, what it logged,
    and the lineage tags of the data it read."""
    parent_end, child_end = socket.socketpair()
    broker = TrainingBroker(
        parent_end,
        settings,
        environment.lake,
        environment.secret,
        folders["model"].parent,
        spark_settings=lambda: lake_hadoop_settings(environment),
        public_keys=frozenset(environment.public_secret_keys()),
    )
    broker.start()
    argv = [sys.executable, "-m", "conveyor.compute.runner"]
    if confinement.sandboxed:
        argv = plan_for(environment, [folders["model"].parent], confinement).command(argv)
    else:
        err(f"warning: {confinement.notice()}\n")
    child_environment = minimal_environment(
        {
            FD_VARIABLE: str(child_end.fileno()),
            "CONVEYOR_ENV": environment.name,
            "HOME": str(folders["home"]),
            "TMPDIR": str(folders["tmp"]),
            "MLFLOW_TRACKING_URI": folders["mlruns"].as_uri(),
            "MLFLOW_ALLOW_FILE_STORE": "true",  # a scratch store of this run only, merged into the real run after
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    try:
        process = subprocess.Popen(
            argv,
            cwd=environment.project.root,
            env=child_environment,
            pass_fds=(child_end.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    finally:
        child_end.close()
    assert process.stdout is not None and process.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, err), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    code = process.wait()
    for pump in pumps:
        pump.join()
    broker.join(timeout=30)
    parent_end.close()
    lineage = _lineage_tags(environment, broker, confinement)
    _import_scratch_runs(folders["mlruns"], broker.record)
    return code, broker.record, lineage


def _lineage_tags(environment: Environment, broker: TrainingBroker, confinement: Confinement) -> dict[str, str]:
    commit, dirty = git_commit(environment.project.root)
    tags = {
        "state": environment.state,
        "created_by": environment.created_by,
        "environment": environment.name,
        "training_sandbox": confinement.sandbox,
    }
    if commit:
        tags["git_commit"] = commit
        tags["git_dirty"] = str(dirty).lower()
    reads = broker.lake.reads() if broker.lake_was_used else []
    tags["data_digest"] = broker.lake.data_digest() if reads else "none"
    if broker.lake_was_used:
        tags["data_files"] = ",".join(read.path for read in reads)[:4000]
    return tags


def _import_scratch_runs(scratch: Path, record: RunRecord) -> None:
    """Params, metrics and tags the script logged with MLflow itself (into its scratch store) join the run."""
    if not any(scratch.glob("*/*/meta.yaml")):
        return
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # reading the scratch store the child wrote
    client = MlflowClient(tracking_uri=scratch.as_uri())
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            for key, value in run.data.params.items():
                record.params.setdefault(key, value)
            record.tags.update({k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")})
            for key in run.data.metrics:
                for metric in client.get_metric_history(run.info.run_id, key):
                    record.metrics.append((key, metric.value, metric.timestamp, metric.step))


def log_run(
    environment: Environment,
    settings: RunSettings,
    record: RunRecord,
    lineage: dict[str, str],
    started: int,
    *,
    ok: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """The MLflow run of this training in the environment's registry, with everything masked as it is stored;
    registers the models when ok. Its id and the versions registered."""
    registry = _registry(environment)
    client = registry.client
    with _registry_uris(registry.uri):
        return _record(environment, registry, client, settings, record, lineage, started, ok=ok)


@contextlib.contextmanager
def _registry_uris(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to `uri` for a registration, and put back after."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    saved = tracking_state._tracking_uri, registry_state._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_state._tracking_uri, registry_state._registry_uri = saved


def _record(
    environment: Environment,
    registry: Any,
    client: Any,
    settings: RunSettings,
    record: RunRecord,
    lineage: dict[str, str],
    started: int,
    *,
    ok: bool,
) -> tuple[str, list[dict[str, Any]]]:
    """Create the run (its start time the script's), log what the script logged, masked; register when ok."""
    import mlflow
    from mlflow.entities import Metric, Param

    from conveyor.registry.store import pinned_requirements

    script = Path(settings.script).name
    run_tags = {"conveyor.environment": environment.name, "conveyor.script": script, **record.tags}
    run = client.create_run(
        registry.experiment_id(), start_time=started, tags=mask_fields(run_tags), run_name=f"train-{environment.name}"
    )
    run_id = run.info.run_id
    params = [Param(k, str(v)) for k, v in mask_fields(record.params).items()]
    names = list(dict.fromkeys(key for key, _, _, _ in record.metrics))
    renamed = dict(zip(names, mask_fields(dict.fromkeys(names, 0.0)), strict=True))
    metrics = [Metric(renamed[key], float(value), stamp, step) for key, value, stamp, step in record.metrics]
    client.log_batch(run_id, metrics=metrics, params=params)
    if not ok:
        client.set_terminated(run_id, "FAILED")
        return run_id, []
    registered = []
    project = environment.project
    root = project.root
    code = [root / c for c in project.config.project.code if (root / c).exists()]
    latest = {k: v for k, v in mask_fields(record.latest_metrics()).items() if isinstance(v, float)}
    with mlflow.start_run(run_id=run_id):
        for pending in record.registrations:
            score = root / project.config.project.score
            model_uri = registry.log_pyfunc(pending.path, score, code, pinned_requirements())
            tags = {**pending.tags, **lineage, **{f"metric.{k}": f"{v:.6g}" for k, v in latest.items()}}
            version = registry.register(model_uri, pending.name, {k: str(v) for k, v in mask_fields(tags).items()})
            registered.append(version.to_dict())
    return run_id, json.loads(json.dumps(registered))


class LocalCompute:
    """`compute = "local"`: the script runs in a process on this machine; `ctx.spark()` is Spark in local mode."""

    def __init__(self, setting: str = "local") -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        return run_training_process(environment, args, out, err)

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> SparkSession:
        from conveyor.compute.spark import SparkLocal

        return SparkLocal().spark_session(app_name, hadoop_settings)
