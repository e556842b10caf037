"""Secrets are masked where they are stored, not only where they are printed: MLflow run data, and every
`--json` document, which stays valid JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.compute import train
from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.registry import ModelRegistry
from conveyor.secrets.redaction import forget_all

pytestmark = pytest.mark.slow
PASSWORD = "Zq8-rotating-db-pw-41"


@pytest.fixture()
def project(census_project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    store = load_project(copy).environment("dev").secrets.path
    text = store.read_text()
    if "db-password" not in text:
        store.write_text(text + f'db-password = "{PASSWORD}"\n')
    toml = copy / "conveyor.toml"
    toml.write_text(toml.read_text().replace("secrets = []", 'secrets = ["db-password"]', 1))
    return copy


SCRIPT = """
import conveyor, mlflow
ctx = conveyor.context()
pw = ctx.secret("db-password")
dsn = f"postgresql://svc:{pw}@db.internal:5432/features"
ctx.log_params({"dsn": dsn, "quoted": repr(pw), "pw_" + pw: "key holds it"})
ctx.log_metric("loss_" + pw, 0.25)
ctx.set_tags({"source": dsn})
mlflow.log_param("direct_dsn", dsn)
mlflow.log_metric("direct_" + pw, 1.0)
(ctx.output_dir / "weights.json").write_text("{}")
ctx.register_model(ctx.output_dir, "probe", tags={"dsn": dsn})
"""


def test_run_data_is_stored_masked_and_shown_masked_by_a_fresh_process(project: Path, capsys) -> None:
    (project / "train.py").write_text(SCRIPT)
    train(load_project(project).environment("dev"), out=lambda _: None, err=lambda _: None)
    database = project / ".conveyor" / "dev" / "mlflow.db"
    assert PASSWORD.encode() not in database.read_bytes()
    for stored in (project / ".conveyor").rglob("*"):
        if stored.is_file():
            assert PASSWORD.encode() not in stored.read_bytes(), stored
    forget_all()  # a later `models show` has never read the store
    capsys.readouterr()
    assert main(["models", "show", "probe", "--env", "dev", "--project", str(project), "--json"]) == 0
    shown = capsys.readouterr().out
    data = json.loads(shown)
    assert PASSWORD not in shown
    assert data["params"]["dsn"] == "postgresql://svc:***@db.internal:5432/features"
    assert data["params"]["direct_dsn"] == "postgresql://svc:***@db.internal:5432/features"
    assert data["params"]["pw_MASKED"] == "key holds it" and data["params"]["quoted"] == "'***'"
    assert set(data["metrics"]) >= {"loss_MASKED", "direct_MASKED"}
    assert data["tags"]["dsn"] == "postgresql://svc:***@db.internal:5432/features"


def test_a_failed_run_is_stored_masked_too(project: Path) -> None:
    (project / "train.py").write_text(SCRIPT + "raise SystemExit(3)\n")
    with pytest.raises(CheckFailed):
        train(load_project(project).environment("dev"), out=lambda _: None, err=lambda _: None)
    database = project / ".conveyor" / "dev" / "mlflow.db"
    assert PASSWORD.encode() not in database.read_bytes()
    registry = ModelRegistry(load_project(project).environment("dev"))
    (run,) = registry.client.search_runs([registry.experiment_id()])
    assert run.info.status == "FAILED"
    assert run.data.params["dsn"] == "postgresql://svc:***@db.internal:5432/features"


def test_json_output_stays_valid_when_a_secret_is_a_key_or_a_word_of_it(project: Path, capsys) -> None:
    from conveyor.cli.output import emit_json
    from conveyor.secrets.redaction import register_secret

    register_secret("name-of-the-svc")
    emit_json({"name-of-the-svc": True, "list": ["name-of-the-svc", 1.5, None], "ok": "true"})
    data = json.loads(capsys.readouterr().out)
    assert data == {"***": True, "list": ["***", 1.5, None], "ok": "true"}


def test_training_refuses_a_store_holding_a_value_too_weak_to_mask(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.secrets.redaction import WeakSecretError

    store = tmp_path / "dev-copy.toml"
    store.write_text(load_project(project).environment("dev").secrets.path.read_text() + 'door-pin = "4711"\n')
    store.chmod(0o600)
    monkeypatch.setenv("CONVEYOR_SECRETS_DEV", store.as_uri())
    (project / "train.py").write_text("print('never runs')\n")
    with pytest.raises(WeakSecretError, match=r"'door-pin'.*4 characters"):
        train(load_project(project).environment("dev"), out=lambda _: None, err=lambda _: None)
