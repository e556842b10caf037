"""`conveyor train`: a real MLflow registry per environment, lineage tags, nothing registered on failure."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.compute import train
from conveyor.config import load_project
from conveyor.errors import CheckFailed, LakeError
from conveyor.registry import ModelRegistry

pytestmark = pytest.mark.slow


def test_dev_training_registers_model_with_lineage_tags(trained_project: Path):
    env = load_project(trained_project).environment("dev")
    info = ModelRegistry(env).resolve("worst_regression")
    tags = info.tags
    assert tags["state"] == "dev"
    assert tags["created_by"] == "tester"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=trained_project, capture_output=True, text=True)
    assert tags["git_commit"] == head.stdout.strip()
    lake_file = Path(env.lake_url.removeprefix("file://")) / "AdultCensusIncome.csv"
    file_hash = hashlib.sha256(lake_file.read_bytes()).hexdigest()
    expected = hashlib.sha256(f"AdultCensusIncome.csv\t{file_hash}\n".encode()).hexdigest()
    assert tags["data_digest"] == f"sha256:{expected}"
    assert tags["data_files"] == "AdultCensusIncome.csv"
    assert float(tags["metric.mae"]) == pytest.approx(info.metrics["mae"], rel=1e-5)
    assert 10_000 < info.metrics["mae"] < 500_000  # fnlwgt units, not scaled units
    assert set(info.params) >= {"features", "target", "test_size"}


def test_registered_model_is_a_working_mlflow_pyfunc(trained_project: Path):
    import mlflow.pyfunc
    import pandas as pd

    env = load_project(trained_project).environment("dev")
    mlflow.set_registry_uri(env.registry_uri)
    mlflow.set_tracking_uri(env.registry_uri)
    model = mlflow.pyfunc.load_model("models:/worst_regression/1")
    result = model.predict(pd.DataFrame([{"age": 37, "hours-per-week": 40.0}]))
    assert isinstance(result[0]["estimated_wages"], float)


def test_stage_training_leaves_dev_registry_unchanged(trained_project: Path):
    project = load_project(trained_project)
    dev_before = [v.version for v in ModelRegistry(project.environment("dev")).versions("worst_regression")]
    result = train(project.environment("stage"), out=lambda _: None, err=lambda _: None)
    assert result.registered[0]["tags"]["state"] == "stage"
    stage_lake = project.environment("stage").lake_url
    dev_lake = project.environment("dev").lake_url
    assert stage_lake != dev_lake
    dev_after = [v.version for v in ModelRegistry(project.environment("dev")).versions("worst_regression")]
    assert dev_after == dev_before
    stage = ModelRegistry(project.environment("stage")).resolve("worst_regression")
    dev = ModelRegistry(project.environment("dev")).resolve("worst_regression")
    assert stage.tags["data_digest"] != dev.tags["data_digest"]  # different data in each lake


def declare_training_secrets(root: Path, keys: list[str]) -> None:
    toml = root / "conveyor.toml"
    toml.write_text(toml.read_text().replace("secrets = []", f"secrets = {keys!r}".replace("'", '"'), 1))


@pytest.fixture()
def scratch_project(census_project: Path, tmp_path: Path) -> Path:
    """A copy of the census project whose train.py a test may replace (stores stay per copy)."""
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    return copy


def test_failing_script_exits_nonzero_shows_traceback_registers_nothing(scratch_project: Path):
    (scratch_project / "train.py").write_text(
        "import conveyor\n"
        "ctx = conveyor.context()\n"
        "out = ctx.output_dir / 'model.pkl'\n"
        "out.write_bytes(b'x')\n"
        "ctx.register_model(ctx.output_dir, 'half_done')\n"
        "def fit():\n"
        "    raise ZeroDivisionError('bad fold')\n"
        "fit()\n"
    )
    lines: list[str] = []
    env = load_project(scratch_project).environment("dev")
    with pytest.raises(CheckFailed, match="nothing was registered") as info:
        train(env, out=lines.append, err=lines.append)
    assert info.value.exit_code == 1
    output = "".join(lines)
    assert "ZeroDivisionError: bad fold" in output
    assert 'train.py", line 7, in fit' in output
    assert "conveyor/compute/runner.py" not in output  # the user's traceback, not ours
    assert ModelRegistry(env).model_names() == []


def test_secret_never_leaks_from_a_failing_script(scratch_project: Path):
    secret_file = Path(load_project(scratch_project).environment("dev").secrets.path)
    password = "s3cr3t-P4ssw0rd-do-not-print"
    with secret_file.open("a") as handle:
        handle.write(f'sp-password = "{password}"\n')
    declare_training_secrets(scratch_project, ["sp-password"])
    (scratch_project / "train.py").write_text(
        "import logging, conveyor\n"
        "ctx = conveyor.context()\n"
        "value = ctx.secret('sp-password')\n"
        "print('connecting with', value)\n"
        "logging.getLogger('train').warning('password is %s', value)\n"
        "raise RuntimeError(f'login failed for {value}')\n"
    )
    lines: list[str] = []
    with pytest.raises(CheckFailed) as info:
        train(load_project(scratch_project).environment("dev"), out=lines.append, err=lines.append)
    output = "".join(lines)
    assert "connecting with ***" in output
    assert "password is ***" in output
    assert "RuntimeError: login failed for ***" in output
    assert password not in output and password not in str(info.value)
    stores = list((scratch_project / ".conveyor").rglob("*"))
    for path in stores:
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_script_reading_a_missing_lake_file_fails_clearly(scratch_project: Path):
    (scratch_project / "train.py").write_text(
        "import conveyor\nctx = conveyor.context()\nctx.lake.open('nope/missing.csv').read()\n"
    )
    lines: list[str] = []
    with pytest.raises(CheckFailed):
        train(load_project(scratch_project).environment("dev"), out=lines.append, err=lines.append)
    output = "".join(lines)
    assert "nope/missing.csv" in output


def test_dev_code_cannot_read_stage_lake(scratch_project: Path):
    project = load_project(scratch_project)
    stage_lake = project.environment("stage").lake_url.removeprefix("file://")
    lake = project.environment("dev").lake()
    for path in ("../stage/sealed/AdultCensusIncome-eval.csv", f"{stage_lake}/AdultCensusIncome.csv"):
        with pytest.raises(LakeError):
            lake.open(path).read()


def test_context_outside_training_is_a_clear_error(tmp_path):
    code = "import conveyor\nconveyor.context()\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "only available inside `conveyor train`" in done.stderr
