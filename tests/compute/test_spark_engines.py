"""The census example trained on a Spark standalone cluster and through Spark Connect, both started on loopback.

The evidence that the work ran on the engine, not in the training process: the lake file is read (and the tasks
logged) by the worker's executor of the application conveyor started, or by the Connect server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.compute import train
from conveyor.config import load_project
from conveyor.registry import ModelRegistry
from spark_servers import ConnectServer, StandaloneCluster

pytestmark = pytest.mark.slow

DATA_FILE = "AdultCensusIncome.csv"


def project_on(census_project: Path, tmp_path: Path, compute: str) -> Path:
    """A copy of the census project (same secrets and lakes) whose dev environment computes on `compute`."""
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    text = (copy / "conveyor.toml").read_text()
    (copy / "conveyor.toml").write_text(text.replace('compute = "local"', f'compute = "{compute}"', 1))
    return copy


def local_mae(trained_project: Path) -> str:
    """The MAE tag of the model trained in dev by a local process on the same data."""
    env = load_project(trained_project).environment("dev")
    return ModelRegistry(env).resolve("worst_regression/1").tags["metric.mae"]


def test_census_trains_on_a_standalone_cluster_whose_executor_does_the_reading(
    spark_cluster: StandaloneCluster, census_project: Path, trained_project: Path, tmp_path: Path
) -> None:
    env = load_project(project_on(census_project, tmp_path, spark_cluster.url)).environment("dev")
    lines: list[str] = []
    result = train(env, out=lines.append, err=lines.append)

    version = result.registered[0]
    assert version["tags"]["data_files"] == DATA_FILE
    assert version["tags"]["metric.mae"] == local_mae(trained_project)  # same data, split and model
    [app] = [a for a in spark_cluster.state()["completedapps"] if a["name"] == "census-dev"]
    executors = spark_cluster.executor_logs(app["id"])
    assert executors, f"no executor of {app['id']} ran on the worker"
    logs = "\n".join(executors.values())
    assert "Running task" in logs and "Finished task" in logs
    assert f"Reading File path: file://{env.lake_url.removeprefix('file://')}/{DATA_FILE}" in logs
    assert "Reading File path" not in "".join(lines)  # the driver did not read it


def test_census_trains_through_spark_connect(
    spark_connect: ConnectServer, census_project: Path, trained_project: Path, tmp_path: Path
) -> None:
    env = load_project(project_on(census_project, tmp_path, spark_connect.url)).environment("dev")
    before = len(spark_connect.log())
    lines: list[str] = []
    result = train(env, out=lines.append, err=lines.append)

    version = result.registered[0]
    assert version["tags"]["data_files"] == DATA_FILE
    assert version["tags"]["metric.mae"] == local_mae(trained_project)
    served = spark_connect.log()[before:]
    assert f"Reading File path: file://{env.lake_url.removeprefix('file://')}/{DATA_FILE}" in served
    assert "read 600 rows" in "".join(lines)
