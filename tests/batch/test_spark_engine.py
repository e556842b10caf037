"""The Spark engine in local mode: the same predictions as the local engine, from the package shipped to the
executors; errors raised on an executor reach the person as the local engine reports them."""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest

from conveyor.batch import BatchInputError, score_batch
from conveyor.examples.census_data import write_census_csv

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java: scripts/install-system-deps.sh"),
]


@pytest.fixture(scope="module", autouse=True)
def local_spark():
    """Spark in local mode with two cores for this module; the session is stopped afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVEYOR_SPARK_MASTER", "local[2]")
        yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def rows(table):
    return table.replace_schema_metadata(None).to_pylist()


@pytest.mark.parametrize("source", ["people.csv", "people.parquet"])
def test_spark_and_local_engines_give_identical_rows_and_predictions(batch_project, source):
    env = batch_project.env()
    local = score_batch(env, source, f"scores/local-{source}", model="worst_regression/1", overwrite=True)
    spark = score_batch(env, source, f"scores/spark-{source}", model="worst_regression/1", engine="spark")
    assert spark.rows == local.rows == 1500 and spark.predictions == local.predictions
    assert spark.details["archive"].startswith("conveyor-package-") and spark.details["spark"] == "local[2]"
    from_spark, from_local = batch_project.read(f"scores/spark-{source}"), batch_project.read(f"scores/local-{source}")
    assert from_spark.column_names == from_local.column_names
    assert rows(from_spark) == rows(from_local)  # every value, predictions bit for bit
    assert all(name.startswith("part-") for name in (f.rsplit("/", 1)[1] for f in spark.output_files))


WHERE_LOADED = """
import os
from inference.model import WageModel
inits = 0
def init():
    global model, inits
    inits += 1
    model = WageModel.load()
def run(request):
    return model.score(request)
def run_table(batch):
    return {**model.score_table(batch), "model_dir": [os.environ["CONVEYOR_MODEL_DIR"]] * batch.num_rows,
            "worker": [os.getpid()] * batch.num_rows, "inits": [inits] * batch.num_rows}
"""


def test_executors_load_the_shipped_archive_not_the_drivers_folder(batch_project, package_copy):
    package = package_copy("where", WHERE_LOADED)
    result = score_batch(
        batch_project.env(), "people.parquet", "scores/where", package=package, engine="spark", batch_rows=100
    )
    scored = pq.read_table(batch_project.lake / "scores/where")
    assert set(scored.column("inits").to_pylist()) == {1}  # once per Python worker, for all its batches
    assert os.getpid() not in set(scored.column("worker").to_pylist())  # scored by Spark's workers
    loaded = set(scored.column("model_dir").to_pylist())
    assert len(loaded) == 1
    where = loaded.pop()
    assert where.endswith(f"/{result.details['archive']}/model") and not where.startswith(str(package))


def test_a_bad_value_found_on_an_executor_is_bad_input(batch_project):
    path = batch_project.lake / "late-negative.csv"
    write_census_csv(path, rows=1_400, seed=9)
    lines = path.read_text().splitlines()
    lines[1_300] = "-4" + lines[1_300][lines[1_300].index(",") :]  # past the rows the driver samples
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BatchInputError, match="column 'age'") as refused:
        score_batch(batch_project.env(), "late-negative.csv", "scores/late", model="worst_regression/1", engine="spark")
    assert refused.value.exit_code == 2 and "Spark executor" in str(refused.value)
    scores = batch_project.lake / "scores"
    assert not (scores / "late").exists() and not [p for p in scores.iterdir() if p.name.startswith(".late")]
