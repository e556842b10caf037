"""Training in a confined child process on this machine: the script runs in a child with a scrubbed environment,
the run's facts and one channel back here (see `conveyor.training.broker`); where the OS allows, in a sandbox that
hides every secret file, every lake and the project's state (`conveyor.training.sandbox`).

This process holds the environment (its store, the lake's credentials); what the child did comes back as a
`FinishedScript`, with the lineage tags computed here from the reads this process served.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from conveyor.compute.hadoop import lake_hadoop_settings
from conveyor.compute.lineage import git_commit
from conveyor.config.computes import compute_of
from conveyor.errors import ConfigError
from conveyor.secrets import redaction
from conveyor.secrets.scrubbing import minimal_environment
from conveyor.training.broker import RunRecord, TrainingBroker, run_folders
from conveyor.training.channel import FD_VARIABLE
from conveyor.training.sandbox import Confinement, confinement_for, plan_for
from conveyor.training.settings import RunSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from conveyor.compute.base import Writer
    from conveyor.config import Environment


def _pump(stream: IO[str], write: Callable[[str], object]) -> None:
    for line in iter(stream.readline, ""):
        write(redaction.redact(line))


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


def run_settings(environment: Environment, script: Path, args: Sequence[str], output_dir: Path) -> RunSettings:
    """The settings of a run of `script` with `args` in `environment`, its model written to `output_dir`."""
    project = environment.project
    return RunSettings(
        env=environment.name,
        state=environment.state,
        compute=environment.compute,
        project=project.name,
        root=str(project.root),
        script=str(script),
        args=list(args),
        output_dir=str(output_dir),
        declared_secrets=list(project.config.training.secrets),
        spark=compute_of(environment.compute).spark,
    )


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
def confined_run(
    environment: Environment,
    args: Sequence[str],
    out: Writer,
    err: Writer,
    meanwhile: Callable[[Environment], None] | None = None,
) -> Iterator[FinishedScript]:
    """Run the project's training script in a confined child; yields what it did while the run's folders (and the
    model files in them) still exist. `meanwhile` runs in a thread beside the script, once the environment has
    been checked (what comes after the script can be readied then)."""
    script = training_script(environment)
    confinement = confinement_for(environment)
    check_environment(environment)
    if meanwhile is not None:
        threading.Thread(target=meanwhile, args=(environment,), daemon=True).start()
    started = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="conveyor-run-") as tmp:
        run_dir = Path(tmp).resolve()
        folders = run_folders(run_dir)
        settings = run_settings(environment, script, args, folders["model"])
        code, record, lineage = _run_child(environment, settings, folders, confinement, out, err)
        yield FinishedScript(code, settings, record, lineage, started, confinement)


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
    assert process.stdout is not None and process.stderr is not None  # noqa: S101 -- narrows for mypy: the child is started with stdout and stderr piped
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
