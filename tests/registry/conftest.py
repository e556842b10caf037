"""A real MLflow store with several models, versions, aliases, tags and a prompt; and a real MLflow server on it."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow_servers import start_mlflow_server, stop_mlflow_server


def write_store(uri: str, artifacts: Path) -> dict[str, str]:
    """Fill an MLflow store through MLflow's client; returns the run ids by name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("registry-reads", artifact_location=artifacts.as_uri())
    runs = {}
    for run_name, metrics, params in (
        ("first", {"mae": [3.0, 2.0, 1.5], "r2": [0.25], "diverged": [math.nan]}, {"alpha": "0.1", "features": "a,b"}),
        ("second", {"mae": [1.25], "r2": [0.5]}, {"alpha": "0.2", "note": ""}),
    ):
        run = client.create_run(experiment, run_name=run_name)
        for key, values in metrics.items():
            for step, value in enumerate(values):
                client.log_metric(run.info.run_id, key, value, step=step, timestamp=1_700_000_000_000 + step)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
        runs[run_name] = run.info.run_id

    source = (artifacts / "model").as_uri()
    client.create_registered_model("alpha_model", tags={"team": "census"})
    for number, run_name in ((1, "first"), (2, "second"), (3, "first"), (4, "second")):
        client.create_model_version(
            "alpha_model",
            f"{source}/{number}",
            run_id=runs[run_name],
            tags={"state": "dev", "created_by": "alice", "metric.mae": str(number), "empty": "", "ünï": "cödé"},
        )
    client.set_model_version_tag("alpha_model", "3", "state", "stage")
    client.set_registered_model_alias("alpha_model", "champion", "2")
    client.set_registered_model_alias("alpha_model", "prod", "2")
    client.set_registered_model_alias("alpha_model", "qa", "3")
    client.delete_model_version("alpha_model", "4")

    client.create_registered_model("beta.model-x")
    client.create_model_version("beta.model-x", f"{source}/beta")  # no run
    client.set_registered_model_alias("beta.model-x", "prod", "1")
    client.create_registered_model("no_versions_yet")
    client.register_prompt("greeting", template="Hello, {{name}}!")  # a prompt is not a model
    return runs


@pytest.fixture(scope="session")
def registry_store(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """An MLflow SQLite store written by the installed MLflow, and its run ids."""
    folder = tmp_path_factory.mktemp("registry-store")
    path = folder / "mlflow.db"
    runs = write_store(f"sqlite:///{path}", folder / "artifacts")
    return path, runs


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[Callable[[Path], str]]:
    """Start `mlflow server` on a store (once per store); every server is stopped at the end of the session."""
    started: dict[Path, tuple[subprocess.Popen[bytes], str]] = {}

    def serve(store: Path) -> str:
        if store not in started:
            started[store] = start_mlflow_server(store, tmp_path_factory.mktemp("mlflow-server") / "server.log")
        return started[store][1]

    yield serve
    for process, _ in started.values():
        stop_mlflow_server(process)
