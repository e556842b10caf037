"""The trained census project of the suite, with CSV and Parquet inputs for the batch tests in its dev lake."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conveyor.config import Environment, load_project
from conveyor.examples.census_data import write_census_csv
from spark_servers import spark_cluster, spark_connect

__all__ = ["spark_cluster", "spark_connect"]  # the loopback Spark servers of tests/spark_servers.py

INPUT_ROWS = 1_500


@dataclass(frozen=True)
class BatchProject:
    root: Path
    lake: Path  # the dev lake's folder

    def env(self) -> Environment:
        return load_project(self.root).environment("dev")

    def read(self, output: str) -> pa.Table:
        return pq.read_table(self.lake / output)


@pytest.fixture(scope="session")
def batch_project(trained_project: Path) -> BatchProject:
    """The suite's trained census project (worst_regression/1 in dev), with `people.csv` (census format) and
    `people.parquet` in its dev lake."""
    environment = load_project(trained_project).environment("dev")
    lake = Path(environment.lake().location.root)
    write_census_csv(lake / "people.csv", rows=INPUT_ROWS, seed=5)
    from conveyor.batch.datasets import tidy_csv_batch

    tidy = tidy_csv_batch(pcsv.read_csv(lake / "people.csv").combine_chunks().to_batches()[0])
    pq.write_table(pa.Table.from_batches([tidy]), lake / "people.parquet", row_group_size=500)
    return BatchProject(trained_project, lake)


@pytest.fixture(scope="session")
def built(batch_project: BatchProject):
    """A package-only build (no image) of worst_regression/1: what the pipelines and releases score with."""
    from conveyor.package import build

    project = load_project(batch_project.root)
    return build(project, project.environment("dev"), model_spec="worst_regression/1", engine="none")


@pytest.fixture
def package_copy(batch_project: BatchProject, tmp_path: Path):
    """A copy of the registered model's package whose score.py a test may rewrite."""
    from conveyor.batch import model_package

    def copy(name: str, score: str | None = None) -> Path:
        source = model_package(batch_project.env(), model="worst_regression/1")
        target = tmp_path / name
        shutil.copytree(source, target)
        if score is not None:
            (target / "score.py").write_text(score)
        return target

    return copy
