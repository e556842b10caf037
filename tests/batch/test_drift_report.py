"""A batch job's drift report: written beside the output when the package holds a training profile."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from conveyor.batch import score_batch
from conveyor.batch.datasets import tidy_csv_batch
from conveyor.cli.main import main
from conveyor.examples.census_data import write_census_csv
from conveyor.release.shipment import Shipment
from conveyor.release.targets import DeployContext, target_for


def write_shifted(batch_project, name: str, rows: int = 2000) -> None:
    """A fresh census sample, aged 15 years and working half as long again, as Parquet in the dev lake."""
    source = batch_project.lake / f"{name}.csv"
    write_census_csv(source, rows=rows, seed=29)
    table = pa.Table.from_batches([tidy_csv_batch(pcsv.read_csv(source).combine_chunks().to_batches()[0])])
    table = table.set_column(table.schema.get_field_index("age"), "age", pc.add(table["age"], 15))
    hours = pc.multiply(table["hours-per-week"].cast(pa.float64()), 1.5)
    table = table.set_column(table.schema.get_field_index("hours-per-week"), "hours-per-week", hours)
    pq.write_table(table, batch_project.lake / f"{name}.parquet")


def test_a_shifted_input_is_reported_beside_the_output(batch_project, built) -> None:
    write_shifted(batch_project, "shifted")
    env = batch_project.env()
    result = score_batch(env, "shifted.parquet", "scores/shifted", package=built.package_dir)
    assert result.drift is not None and result.drift.path == "scores/shifted.drift.json"
    report = json.loads((batch_project.lake / "scores/shifted.drift.json").read_text())
    assert report["available"] and report["records"] == 2000 and report["input"] == "shifted.parquet"
    assert report["package"]["digest"] == built.digest
    for feature in ("age", "hours-per-week"):
        assert report["features"][feature]["psi"] > 0.2 and report["features"][feature]["ks_pvalue"] < 0.01
    steady = score_batch(env, "people.csv", "scores/steady", package=built.package_dir)
    assert steady.drift is not None and steady.drift.path == "scores/steady.drift.json"
    assert all(f.psi < 0.1 for f in steady.drift.report.features.values()), steady.drift.report.to_json()
    assert result.to_dict()["drift"] == {"available": True, "report": "scores/shifted.drift.json"}


def test_a_package_without_a_profile_writes_no_report_and_says_why(batch_project, capsys) -> None:
    code = main(
        [
            "score-batch",
            "-p",
            str(batch_project.root),
            "--env",
            "dev",
            "--model",
            "worst_regression/1",
            "--input",
            "people.csv",
            "--output",
            "scores/unprofiled",
        ]
    )
    assert code == 0
    assert "drift unavailable: the package" in capsys.readouterr().err
    assert not (batch_project.lake / "scores/unprofiled.drift.json").exists()


def test_a_batch_release_writes_the_report_beside_its_output(batch_project, built) -> None:
    from conveyor.config import load_project

    project = load_project(batch_project.root)
    model = built.data["model"]
    shipment = Shipment(built.digest, None, None, built.package_dir, model["name"], str(model["version"]))
    context = DeployContext(project.name, project.state_dir, "scores", 9, shipment)
    target = target_for("batch://dev/people.parquet?output=scores/drift-{release}")
    done = target.run_step("score", context)
    assert "drift report scores/drift-v1-r9.drift.json" in (done.note or "")
    assert (batch_project.lake / "scores/drift-v1-r9.drift.json").is_file()
