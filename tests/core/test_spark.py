"""Training on Spark (local mode): the same train.py, the lake read by Spark and recorded for lineage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.compute import train
from conveyor.config import load_project

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java: scripts/install-system-deps.sh")
def test_census_trains_on_spark_local_mode(census_project: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "local[1]")
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    text = (copy / "conveyor.toml").read_text()
    (copy / "conveyor.toml").write_text(text.replace('compute = "local"', 'compute = "spark"', 1))
    env = load_project(copy).environment("dev")
    assert env.compute == "spark"
    lines: list[str] = []
    result = train(env, out=lines.append, err=lines.append)
    version = result.registered[0]
    assert version["tags"]["data_files"] == "AdultCensusIncome.csv"
    assert version["tags"]["data_digest"].startswith("sha256:")
    assert "read 600 rows" in "".join(lines)
    # Same data, same split, same model: the Spark path gives the pandas path's metrics.
    local = train(load_project(census_project).environment("dev"), out=lines.append, err=lines.append)
    assert version["tags"]["metric.mae"] == local.registered[0]["tags"]["metric.mae"]
    assert version["tags"]["data_digest"] == local.registered[0]["tags"]["data_digest"]
