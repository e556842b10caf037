"""`conveyor score-batch` as a person and a pipeline meet it: progress on stderr, --json on stdout, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from conveyor.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_progress_goes_to_stderr_and_the_output_path_to_stdout(batch_project):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "score-batch",
            "--env",
            "dev",
            "--model",
            "worst_regression/1",
            "--input",
            "people.parquet",
            "--output",
            "scores/progress",
            "--batch-rows",
            "300",
        ],
        cwd=batch_project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scores/progress"
    assert "scoring" in done.stderr and "1500/1500" in done.stderr and "rows" in done.stderr
    assert "scored 1,500 rows of people.parquet with worst_regression/1" in done.stderr


def test_json_is_quiet_and_describes_the_job(capsys, batch_project):
    code, out, err = run(
        capsys,
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
        "scores/json",
        "--json",
    )
    assert code == 0, err
    assert "scoring" not in err
    result = json.loads(out)
    assert result["rows"] == 1500 and result["engine"] == "local" and result["predictions"] == ["estimated_wages"]
    assert result["model"] == {"name": "worst_regression", "version": "1"}
    assert result["input"]["format"] == "csv" and result["input"]["files"][0]["path"] == "people.csv"
    assert result["output"]["files"] == ["scores/json/part-00000.parquet"]
    assert pq.read_table(batch_project.lake / "scores/json").num_rows == 1500


def test_bad_usage_exits_2_with_the_fix(capsys, batch_project):
    (batch_project.lake / "hours-only.parquet").write_bytes(b"")
    base = ["score-batch", "-p", str(batch_project.root), "--env", "dev", "--model", "worst_regression/1"]
    code, _, err = run(capsys, *base, "--input", "people.csv", "--output", "scores/engine", "--engine", "dask")
    assert code == 2 and "no batch engine 'dask'" in err and "local, spark" in err
    code, _, err = run(capsys, *base, "--input", "missing.parquet", "--output", "scores/x")
    assert code == 2 and "'missing.parquet' does not exist in the dev lake" in err
    code, _, err = run(capsys, *base, "--input", "hours-only.parquet", "--output", "scores/x")
    assert code == 2 and "not a readable Parquet file" in err
    (batch_project.lake / "ages.csv").write_text("age,sex\n30,Male\n")
    code, _, err = run(capsys, *base, "--input", "ages.csv", "--output", "scores/ages")
    assert code == 2 and "column 'hours-per-week'" in err
    assert not (batch_project.lake / "scores/ages").exists()
    code, _, err = run(
        capsys,
        "score-batch",
        "-p",
        str(batch_project.root),
        "--env",
        "dev",
        "--input",
        "people.csv",
        "--output",
        "scores/x",
    )
    assert code == 2 and "Pass --model NAME, NAME/VERSION or NAME@ALIAS, or --build BUILD" in err


def test_overwrite_is_refused_without_the_flag(capsys, batch_project):
    base = ["score-batch", "-p", str(batch_project.root), "--env", "dev", "--model", "worst_regression/1"]
    assert run(capsys, *base, "--input", "people.csv", "--output", "scores/twice")[0] == 0
    code, _, err = run(capsys, *base, "--input", "people.csv", "--output", "scores/twice")
    assert code == 2 and "'scores/twice' already exists in the dev lake" in err and "--overwrite" in err
    assert run(capsys, *base, "--input", "people.csv", "--output", "scores/twice", "--overwrite")[0] == 0


def test_a_build_scores_as_the_pipelines_call_it_and_only_as_built(capsys, batch_project, built):
    base = ["score-batch", "-p", str(batch_project.root), "--env", "dev", "--input", "people.parquet", "--json"]
    code, out, err = run(capsys, *base, "--build", str(built.path), "--output", "scores/build")
    assert code == 0, err
    assert json.loads(out)["package"] == str(built.package_dir)
    code, _, err = run(capsys, *base, "--build", built.short, "--output", "scores/build", "--overwrite")
    assert code == 0, err  # by digest prefix too
    weights = built.package_dir / "model" / "weights.json"
    original = weights.read_text()
    try:
        weights.write_text(original.replace('"bias"', '"bias" ', 1))
        code, _, err = run(capsys, *base, "--build", str(built.path), "--output", "scores/changed")
    finally:
        weights.write_text(original)
    assert code == 1 and "weights.json changed" in err
    assert not (batch_project.lake / "scores/changed").exists()
    code, _, err = run(capsys, *base, "--build", str(built.path), "--model", "worst_regression/1", "--output", "x")
    assert code == 2 and "--model and --build both name a model" in err
