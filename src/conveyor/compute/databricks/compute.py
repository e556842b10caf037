"""`compute = "databricks"`: the training script runs as a one-time Databricks job run.

`conveyor train` uploads the project's code and conveyor's wheel under the environment's `upload_path`, submits a
run whose Python wheel task is the runner (`conveyor.compute.databricks.task`), passes on its state and log lines,
fetches the outcome, and registers the models in the environment's registry like a local run.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.compute.child import check_environment, training_script
from conveyor.compute.databricks.bundle import Artifact, conveyor_wheel, project_archive
from conveyor.compute.databricks.job import judge, submit, task_spec, watch
from conveyor.compute.databricks.task import OUTCOME_ARCHIVE
from conveyor.compute.databricks.workspace import (
    Workspace,
    mlflow_credentials,
    open_workspace,
    uses_workspace_registry,
)
from conveyor.compute.outcome import record_outcome, unpack
from conveyor.compute.spark import session_builder, with_lake_settings
from conveyor.errors import ConfigError
from conveyor.secrets import BACKENDS, cluster_stores, scheme_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pyspark.sql import SparkSession

    from conveyor.compute.base import TrainingResult, Writer
    from conveyor.config import Environment


class DatabricksCompute:
    """Training as a Databricks job run; `ctx.spark()` there is the cluster's session."""

    def __init__(self, setting: str = "databricks") -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        script = training_script(environment)
        check_reachable_from_cluster(environment)
        check_environment(environment)
        workspace = open_workspace(environment)
        err(f"databricks: signed in to {workspace.host} as {workspace.sign_in()}\n")
        wheel = upload_once(workspace, "wheels", conveyor_wheel())
        archive = upload_once(workspace, "projects", project_archive(environment.project))
        token = uuid.uuid4().hex[:16]
        run_folder = workspace.path("runs", token)
        parameters = [
            "--project",
            archive,
            "--env",
            environment.name,
            "--out",
            run_folder,
            "--args",
            json.dumps(list(args)),
        ]
        run_name = f"conveyor train {environment.project.name} --env {environment.name}"
        run_id = submit(workspace, run_name, task_spec(workspace, wheel, parameters), token)
        end = watch(workspace, run_id, out, err)
        judge(end, workspace.section.timeout)
        with tempfile.TemporaryDirectory(prefix="conveyor-outcome-") as tmp:
            packed = Path(tmp) / OUTCOME_ARCHIVE
            packed.write_bytes(workspace.download(f"{run_folder}/{OUTCOME_ARCHIVE}"))
            run_tags = {"conveyor.script": script.name, "conveyor.databricks.run_id": str(run_id)}
            if end.page_url:
                run_tags["conveyor.databricks.run_page_url"] = end.page_url
            outcome = unpack(packed, Path(tmp) / "outcome")
            if uses_workspace_registry(environment):
                with mlflow_credentials(workspace):
                    return record_outcome(environment, outcome, run_tags)
            return record_outcome(environment, outcome, run_tags)

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> SparkSession:
        """The cluster's session (the run's driver already has one), with the lake's Hadoop settings."""
        return with_lake_settings(session_builder().getOrCreate(), hadoop_settings)


def upload_once(workspace: Workspace, kind: str, artifact: Artifact) -> str:
    """Upload `artifact` under `upload_path/KIND/DIGEST/` unless it is there already; its path."""
    path = workspace.path(kind, artifact.digest, artifact.name)
    if not workspace.exists(path):
        workspace.upload(path, artifact.data)
    return path


def check_reachable_from_cluster(environment: Environment) -> None:
    """A store the cluster cannot read (a file or the environment variables here): refuse before uploading."""
    url = environment.secrets_url
    backend = BACKENDS.get(scheme_of(url))
    if backend is not None and not backend.cluster:
        raise ConfigError(
            f"environment {environment.name!r} trains on Databricks but keeps its secrets in {backend.summary} "
            f"({backend.name}://...), which the cluster cannot read",
            hint=f"Use a store the cluster reaches for environments.{environment.name}.secrets: {cluster_stores()}.",
        )
