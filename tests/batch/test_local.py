"""`score_batch` on the local engine: real lake files in, Parquet out, through the package's score.py."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from conveyor.batch import BatchInputError, OutputExists, ScoringFailed, model_package, score_batch
from conveyor.batch.scorer import ScoringHook
from conveyor.lake import LakePathMissing
from conveyor.serving.loader import load_and_init

INPUT_ROWS = 1_500  # the rows of the dev lake's people.csv (conftest)


def expected_wages(batch_project, table) -> list[float]:
    """What the server's run() answers for each row: the per-request contract is the reference."""
    score = load_and_init(model_package(batch_project.env(), model="worst_regression/1"))
    rows = table.select(["age", "hours-per-week"]).to_pylist()
    return [score.run(json.dumps(row))["estimated_wages"] for row in rows]


def test_csv_rows_come_back_with_the_predictions_of_run(batch_project):
    result = score_batch(batch_project.env(), "people.csv", "scores/csv", model="worst_regression/1")
    table = batch_project.read("scores/csv")
    assert result.rows == table.num_rows == INPUT_ROWS
    assert result.predictions == ("estimated_wages",)
    assert result.details["hook"] == ScoringHook.RUN_TABLE
    # the census file's ", " dialect: names stripped, text values without the leading space
    assert table.column_names[:3] == ["age", "workclass", "fnlwgt"] and table.column_names[-1] == "estimated_wages"
    assert not any(value.startswith(" ") for value in table.column("workclass").to_pylist())
    assert table.column("estimated_wages").to_pylist() == expected_wages(batch_project, table)
    assert result.input_files[0]["path"] == "people.csv" and len(result.input_files[0]["sha256"]) == 64
    assert result.output_files == ["scores/csv/part-00000.parquet"]


def test_parquet_file_and_folder_score_like_the_csv(batch_project):
    env = batch_project.env()
    score_batch(env, "people.csv", "scores/from-csv", model="worst_regression/1")
    score_batch(env, "people.parquet", "scores/from-parquet", model="worst_regression/1")
    from_csv = batch_project.read("scores/from-csv")
    from_parquet = batch_project.read("scores/from-parquet")
    assert from_parquet.equals(from_csv)
    (batch_project.lake / "folder").mkdir(exist_ok=True)
    table = pq.read_table(batch_project.lake / "people.parquet")
    pq.write_table(table.slice(0, 700), batch_project.lake / "folder" / "part-0.parquet")
    pq.write_table(table.slice(700), batch_project.lake / "folder" / "part-1.parquet")
    (batch_project.lake / "folder" / "_SUCCESS").write_text("")
    result = score_batch(env, "folder", "scores/from-folder", model="worst_regression/1")
    assert result.input.files == ("folder/part-0.parquet", "folder/part-1.parquet")
    assert batch_project.read("scores/from-folder").equals(from_csv)


def test_rows_are_streamed_one_bounded_batch_at_a_time(batch_project):
    score_batch(
        batch_project.env(), "people.parquet", "scores/small-batches", model="worst_regression/1", batch_rows=200
    )
    parquet = pq.ParquetFile(batch_project.lake / "scores/small-batches/part-00000.parquet")
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert max(sizes) <= 200 and sum(sizes) == INPUT_ROWS


RUN_BATCH_ONLY = """
from inference.model import WageModel
def init():
    global model
    model = WageModel.load()
def run(request):
    return model.score(request)
def run_batch(requests):
    return model.score_batch(requests)
"""
RUN_ONLY = """
from inference.model import WageModel
def init():
    global model
    model = WageModel.load()
def run(request):
    return model.score(request)["estimated_wages"]
"""


@pytest.mark.parametrize(
    ("score", "hook", "column"), [(RUN_BATCH_ONLY, "run_batch", "estimated_wages"), (RUN_ONLY, "run", "prediction")]
)
def test_a_score_py_without_run_table_is_scored_through_its_record_hooks(
    batch_project, package_copy, score, hook, column
):
    env = batch_project.env()
    package = package_copy(hook, score)
    result = score_batch(env, "people.csv", f"scores/{hook}", package=package)
    assert result.details["hook"] == hook and result.predictions == (column,)
    table = batch_project.read(f"scores/{hook}")
    assert table.column(column).to_pylist() == pytest.approx(expected_wages(batch_project, table), rel=1e-12)


FAILS_ON_SECOND_BATCH = """
from inference.model import WageModel
calls = 0
def init():
    global model
    model = WageModel.load()
def run(request):
    return model.score(request)
def run_table(batch):
    global calls
    calls += 1
    if calls == 2:
        raise RuntimeError("the model broke half-way")
    return model.score_table(batch)
"""


def test_a_job_that_fails_half_way_leaves_nothing_at_the_output(batch_project, package_copy):
    package = package_copy("breaks", FAILS_ON_SECOND_BATCH)
    with pytest.raises(ScoringFailed, match="the model broke half-way") as failed:
        score_batch(batch_project.env(), "people.csv", "scores/broken", package=package, batch_rows=500)
    assert failed.value.exit_code == 1
    scores = batch_project.lake / "scores"
    assert not (scores / "broken").exists()
    assert not [p.name for p in scores.iterdir() if p.name.startswith(".broken")]  # no staging folder left


def test_an_existing_output_is_replaced_only_with_overwrite(batch_project):
    env = batch_project.env()
    score_batch(env, "people.csv", "scores/kept", model="worst_regression/1", batch_rows=1000)
    before = (batch_project.lake / "scores/kept/part-00000.parquet").read_bytes()
    with pytest.raises(OutputExists, match="scores/kept") as refused:
        score_batch(env, "people.csv", "scores/kept", model="worst_regression/1", batch_rows=100)
    assert refused.value.exit_code == 2 and "--overwrite" in str(refused.value)
    assert (batch_project.lake / "scores/kept/part-00000.parquet").read_bytes() == before
    score_batch(env, "people.csv", "scores/kept", model="worst_regression/1", batch_rows=100, overwrite=True)
    assert pq.ParquetFile(batch_project.lake / "scores/kept/part-00000.parquet").num_row_groups == 15
    assert not [p for p in (batch_project.lake / "scores").iterdir() if p.name.startswith(".kept")]


def test_a_missing_input_is_named_with_what_the_lake_holds(batch_project):
    with pytest.raises(LakePathMissing, match=r"'nowhere\.csv' does not exist in the dev lake") as missing:
        score_batch(batch_project.env(), "nowhere.csv", "scores/x", model="worst_regression/1")
    assert missing.value.exit_code == 2 and "people.csv" in str(missing.value)


def test_an_unknown_format_is_refused(batch_project):
    (batch_project.lake / "people.txt").write_text("age,hours-per-week\n30,40\n")
    with pytest.raises(BatchInputError, match=r"cannot tell the format of the input 'people\.txt'") as refused:
        score_batch(batch_project.env(), "people.txt", "scores/x", model="worst_regression/1")
    assert "Parquet" in str(refused.value) and refused.value.exit_code == 2


def test_a_column_the_model_needs_is_named(batch_project):
    (batch_project.lake / "no-age.csv").write_text("workclass, hours-per-week\nPrivate, 40\nState-gov, 20\n")
    with pytest.raises(BatchInputError, match="column 'age'") as refused:
        score_batch(batch_project.env(), "no-age.csv", "scores/no-age", model="worst_regression/1")
    assert refused.value.exit_code == 2
    assert not (batch_project.lake / "scores/no-age").exists()


def test_an_output_over_the_input_is_refused(batch_project):
    with pytest.raises(BatchInputError, match="overlaps the input"):
        score_batch(batch_project.env(), "people.parquet", "people.parquet", model="worst_regression/1", overwrite=True)
    assert (batch_project.lake / "people.parquet").is_file()


def test_an_output_outside_the_lake_is_refused(batch_project):
    from conveyor.lake import LakePathOutside

    with pytest.raises(LakePathOutside):
        score_batch(batch_project.env(), "people.csv", "../elsewhere", model="worst_regression/1")


COUNTS_INITS = """
from inference.model import WageModel
inits = 0
def init():
    global model, inits
    inits += 1
    model = WageModel.load()
def run(request):
    return model.score(request)
def run_table(batch):
    return {**model.score_table(batch), "inits": [inits] * batch.num_rows}
"""


def test_init_runs_once_per_process_however_many_batches_and_jobs(batch_project, package_copy):
    package = package_copy("counts", COUNTS_INITS)
    env = batch_project.env()
    score_batch(env, "people.parquet", "scores/inits-1", package=package, batch_rows=200)
    score_batch(env, "people.csv", "scores/inits-2", package=package, batch_rows=300)
    for output in ("scores/inits-1", "scores/inits-2"):
        assert set(batch_project.read(output).column("inits").to_pylist()) == {1}
