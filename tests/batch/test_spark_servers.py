"""The Spark engine on a standalone cluster and through Spark Connect, both on loopback (tests/spark_servers.py):
the rows are scored by the engine's executors, from the shipped package, with the local engine's predictions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conveyor.batch import score_batch
from conveyor.config import load_project
from spark_servers import ConnectServer, StandaloneCluster

pytestmark = pytest.mark.slow


CONNECT_VARIABLES = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


@pytest.fixture(autouse=True)
def no_session_left():
    """Each test gets the session its environment names: none may be left active by an earlier test. A Spark
    Connect session marks the process as a Connect client in its environment (inherited by every child process
    started afterwards, such as other tests' training scripts): that mark is taken away again."""

    def stop() -> None:
        from pyspark.sql import SparkSession

        while (session := SparkSession.getActiveSession()) is not None:
            session.stop()

    stop()
    saved = {name: os.environ.pop(name, None) for name in CONNECT_VARIABLES}
    yield
    stop()
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def computing_on(batch_project, tmp_path: Path, compute: str):
    """The dev environment of a copy of the batch project (its lakes, secrets and registry) computing on `compute`."""
    copy = tmp_path / "census"
    shutil.copytree(batch_project.root, copy)
    text = (copy / "conveyor.toml").read_text()
    (copy / "conveyor.toml").write_text(text.replace('compute = "local"', f'compute = "{compute}"', 1))
    return load_project(copy).environment("dev")


def local_rows(batch_project, name: str):
    score_batch(batch_project.env(), "people.parquet", name, model="worst_regression/1", overwrite=True)
    return batch_project.read(name).to_pylist()


def test_a_standalone_cluster_scores_on_its_worker(spark_cluster: StandaloneCluster, batch_project, tmp_path):
    env = computing_on(batch_project, tmp_path, spark_cluster.url)
    result = score_batch(env, "people.parquet", "scores/cluster", model="worst_regression/1", engine="spark")
    assert result.details["spark"] == spark_cluster.url and result.rows == 1500
    scored = batch_project.read("scores/cluster").replace_schema_metadata(None).to_pylist()
    assert scored == local_rows(batch_project, "scores/cluster-local")
    state = spark_cluster.state()
    [app] = [a for a in state["activeapps"] + state["completedapps"] if a["name"] == "census-dev"]
    logs = "\n".join(spark_cluster.executor_logs(app["id"]).values())
    assert "Finished task" in logs  # the worker's executor ran the tasks
    unpacked = list(spark_cluster.worker_dir.glob(f"{app['id']}/*/{result.details['archive']}/score.py"))
    assert unpacked, "the package archive was not unpacked beside the executor"


def test_spark_connect_scores_on_the_server(spark_connect: ConnectServer, batch_project, tmp_path):
    env = computing_on(batch_project, tmp_path, spark_connect.url)
    before = len(spark_connect.log())
    result = score_batch(env, "people.parquet", "scores/connect", model="worst_regression/1", engine="spark")
    assert result.details["spark"] == "connect" and result.rows == 1500
    scored = batch_project.read("scores/connect").replace_schema_metadata(None).to_pylist()
    assert scored == local_rows(batch_project, "scores/connect-local")
    assert "Reading File path: file://" in spark_connect.log()[before:]  # the server read the lake
