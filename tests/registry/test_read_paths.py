"""Reading the registry without MLflow's client gives MLflow's client's answers, or is not done at all.

The store is written by the installed MLflow: several models, versions (one deleted), aliases, tags, runs with
metrics logged at several steps (and a NaN), a model version without a run, a model without versions, a prompt.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import ConveyorError
from conveyor.registry.mlflow_client import MlflowClientReader
from conveyor.registry.reader import ReadPath, RegistryReader
from conveyor.registry.reading import EmptyStore, open_reader
from conveyor.registry.rest import RestRegistry
from conveyor.registry.sqlite_tables import SUPPORTED_REVISIONS, SqliteTables

NAMES_ASKED = ("alpha_model", "beta.model-x", "no_versions_yet", "greeting", "no_such_model")
VERSIONS_ASKED = ("1", "2", "3", "4", "99")
ALIASES_ASKED = ("champion", "prod", "qa", "latest", "nope")


def answers(reader: RegistryReader, run_ids: list[str]) -> dict[str, Any]:
    """Everything a reader says about the store, as JSON-comparable data (NaN written as NaN)."""

    def shown(info: Any) -> Any:
        return info.to_dict() if info is not None else None

    said: dict[str, Any] = {"names": reader.model_names()}
    for name in NAMES_ASKED:
        said[f"versions {name}"] = [v.to_dict() for v in reader.versions(name)]
        for version in VERSIONS_ASKED:
            said[f"version {name}/{version}"] = shown(reader.version(name, version))
        for alias in ALIASES_ASKED:
            said[f"alias {name}@{alias}"] = shown(reader.version_by_alias(name, alias))
    for run_id in [*run_ids, "0" * 32]:
        said[f"run {run_id}"] = reader.run_data(run_id)
    return json.loads(json.dumps(said, sort_keys=True))


@pytest.fixture(scope="module")
def reference(registry_store) -> dict[str, Any]:
    """What MLflow's client says."""
    path, runs = registry_store
    return answers(MlflowClientReader(f"sqlite:///{path}"), list(runs.values()))


def test_the_store_holds_what_was_written(reference, registry_store):
    """The reference itself, spelled out: a comparison with a wrong reference would prove nothing."""
    _, runs = registry_store
    assert reference["names"] == ["alpha_model", "beta.model-x", "no_versions_yet"]  # the prompt is left out
    alpha = reference["versions alpha_model"]
    assert [v["version"] for v in alpha] == ["3", "2", "1"]  # newest first, the deleted 4 left out
    assert [v["aliases"] for v in alpha] == [["qa"], ["champion", "prod"], []]
    assert alpha[0]["tags"] == {"state": "stage", "created_by": "alice", "metric.mae": "3", "empty": "", "ünï": "cödé"}
    assert reference["alias alpha_model@latest"]["version"] == "3"
    assert reference["version alpha_model/4"] is None and reference["alias alpha_model@nope"] is None
    assert reference["versions greeting"] == [] and reference["version greeting/1"] is None
    beta = reference["versions beta.model-x"][0]
    assert beta["run_id"] is None and beta["aliases"] == ["prod"]
    metrics, params = reference[f"run {runs['first']}"]
    assert metrics["mae"] == 1.5 and math.isnan(metrics["diverged"]) and params == {"alpha": "0.1", "features": "a,b"}
    assert reference["run " + "0" * 32] == [{}, {}]


def test_reference_is_what_mlflow_client_returns(registry_store):
    """conveyor's wrapper of MLflow's client adds nothing of its own but the aliases its search leaves out."""
    from mlflow import MlflowClient

    path, runs = registry_store
    client = MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}")
    reader = MlflowClientReader(f"sqlite:///{path}")
    assert reader.model_names() == sorted(m.name for m in client.search_registered_models())
    for version in reader.versions("alpha_model"):
        own = client.get_model_version("alpha_model", version.version)
        assert version.tags == own.tags and list(version.aliases) == sorted(own.aliases)
        assert (version.run_id, version.source, version.created_at) == (own.run_id, own.source, own.creation_timestamp)
    run = client.get_run(runs["second"])
    assert reader.run_data(runs["second"]) == (run.data.metrics, run.data.params)


def test_sqlite_tables_answer_as_mlflow_does(registry_store, reference):
    path, runs = registry_store
    reader = open_reader(f"sqlite:///{path}")
    assert isinstance(reader, SqliteTables), reader.reason
    assert answers(reader, list(runs.values())) == reference


def test_rest_api_answers_as_mlflow_does(registry_store, reference, mlflow_server):
    path, runs = registry_store
    url = mlflow_server(path)
    reader = open_reader(url)
    assert isinstance(reader, RestRegistry)
    assert answers(reader, list(runs.values())) == reference
    assert answers(MlflowClientReader(url), list(runs.values())) == reference  # MLflow's client through the server


@pytest.mark.parametrize("revision", ["ffffffffffff", "0584bdc529eb"], ids=["newer", "older"])
def test_unknown_revision_is_read_by_mlflow_not_misread(registry_store, tmp_path, revision):
    """A store at a revision conveyor does not know (here: faked, with a column moved as a newer MLflow might) is
    handed to MLflow's client; it is never read through tables whose layout may have changed."""
    path, _ = registry_store
    copy = tmp_path / "mlflow.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.execute("ALTER TABLE model_versions RENAME COLUMN source TO source_uri")
    reader = open_reader(f"sqlite:///{copy}")
    assert reader.path is ReadPath.MLFLOW_CLIENT and revision in reader.reason
    with pytest.raises(ConveyorError) as raised:
        reader.versions("alpha_model")
    assert revision in raised.value.message and "pip install -U mlflow" in (raised.value.hint or "")


def test_missing_store_reads_as_empty_and_is_not_created(tmp_path):
    store = tmp_path / "none" / "mlflow.db"
    reader = open_reader(f"sqlite:///{store}")
    assert isinstance(reader, EmptyStore)
    assert reader.model_names() == [] and reader.version_by_alias("m", "prod") is None
    assert not store.exists()


def test_supported_revisions_are_a_run_of_mlflows_chain_up_to_its_head():
    """The installed MLflow's newest revision is read directly; when a new MLflow adds one, this fails until its
    migration is checked against sqlite_tables.py (stores at that revision are read by MLflow's client until then)."""
    import mlflow.store.db_migrations as migrations
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    head = scripts.get_current_head()
    assert head in SUPPORTED_REVISIONS, f"MLflow's head revision {head} is new: review it, then add it"
    chain = [head]
    while chain[-1] != SUPPORTED_REVISIONS[0]:
        chain.append(str(scripts.get_revision(chain[-1]).down_revision))
    # the installed MLflow's chain up to its head; revisions after it come from newer MLflow releases
    known = SUPPORTED_REVISIONS[: SUPPORTED_REVISIONS.index(head) + 1]
    assert list(reversed(chain)) == list(known)


def project_on(registry: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conveyor.toml").write_text(
        f'[project]\nname = "reads"\n[environments.dev]\nsecrets = "env://READS_"\nlake = "file://{folder}/lake"\n'
        f'registry = "{registry}"\n'
    )
    return folder


def cli(project: Path, *argv: str) -> tuple[int, str, str, set[str]]:
    """`conveyor ARGV` in a new interpreter: exit code, stdout, stderr and the modules it imported."""
    modules = project / "modules.json"
    code = (
        "import json, sys\nfrom conveyor.cli.main import main\ncode = main(sys.argv[2:])\n"
        "json.dump(sorted(sys.modules), open(sys.argv[1], 'w'))\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(modules), *argv, "-p", str(project), "--env", "dev"],
        capture_output=True,
        text=True,
    )
    return done.returncode, done.stdout, done.stderr, set(json.loads(modules.read_text()))


def _mlflow_or_sqlalchemy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("mlflow", "sqlalchemy", "alembic")}


def test_cli_reads_a_sqlite_store_without_mlflow(registry_store, reference, tmp_path):
    path, _ = registry_store
    project = project_on(f"sqlite:///{path}", tmp_path / "p")
    code, out, err, modules = cli(project, "models", "list", "alpha_model", "--json")
    assert code == 0, err
    assert json.loads(out) == reference["versions alpha_model"]
    assert _mlflow_or_sqlalchemy(modules) == set()
    code, out, err, modules = cli(project, "models", "show", "alpha_model@champion", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["version"] == "2" and shown["params"] == {"alpha": "0.2", "note": ""}
    assert _mlflow_or_sqlalchemy(modules) == set()


def test_cli_falls_back_to_mlflow_on_an_unknown_revision(registry_store, tmp_path):
    path, _ = registry_store
    copy = tmp_path / "mlflow.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    project = project_on(f"sqlite:///{copy}", tmp_path / "p")
    code, out, err, modules = cli(project, "models", "list", "--json")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2  # under --json the error is JSON too
    assert "ffffffffffff" in err and "mlflow" in {m.split(".")[0] for m in modules}


def test_cli_reads_a_server_without_mlflow(registry_store, reference, mlflow_server, tmp_path):
    path, _ = registry_store
    project = project_on(mlflow_server(path), tmp_path / "p")
    code, out, err, modules = cli(project, "models", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(v["name"], v["version"]) for v in listed] == [
        ("alpha_model", "3"),
        ("alpha_model", "2"),
        ("alpha_model", "1"),
        ("beta.model-x", "1"),
    ]
    assert listed[:3] == reference["versions alpha_model"]
    assert _mlflow_or_sqlalchemy(modules) == set()


def test_prepare_opens_the_store_and_makes_the_experiment_once(tmp_path):
    """`prepare` (run in a thread while a training script runs) leaves the experiment for the registration."""
    import threading

    from conveyor.config import load_project
    from conveyor.registry import ModelRegistry

    project = load_project(project_on(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", tmp_path / "p"))
    registry = ModelRegistry(project.environment("dev"))
    warming = threading.Thread(target=registry.prepare)
    warming.start()
    mine = registry.experiment_id()  # while prepare may be making it: one experiment, never two
    warming.join()
    again = ModelRegistry(project.environment("dev")).experiment_id()
    assert mine == again
    experiment = registry.client.get_experiment(mine)
    assert experiment.name == "reads" and experiment.artifact_location.endswith(".conveyor/dev/artifacts")


def test_a_store_migrated_while_read_is_not_misread(registry_store, tmp_path):
    path, _ = registry_store
    copy = tmp_path / "mlflow.db"
    shutil.copyfile(path, copy)
    reader = open_reader(f"sqlite:///{copy}")
    assert isinstance(reader, SqliteTables) and reader.model_names()
    with sqlite3.connect(copy) as db:  # another process upgrades the store to a revision conveyor does not know
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with pytest.raises(ConveyorError, match="ffffffffffff"):
        reader.versions("alpha_model")


def test_rest_reads_with_mlflows_credentials(registry_store, reference, tmp_path, monkeypatch):
    """A server behind MLflow's basic-auth app: the credentials MLflow's client reads from the environment work, and
    wrong ones are said plainly."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (pip install 'mlflow[auth]')")
    from mlflow_servers import start_mlflow_server, stop_mlflow_server

    path, runs = registry_store
    config = tmp_path / "auth.ini"
    config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{tmp_path / 'auth.db'}\n"
        "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = true\n"
    )
    secrets = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-test-password-42",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    process, url = start_mlflow_server(path, tmp_path / "server.log", "--app-name", "basic-auth", env=secrets)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-test-password-42")
        assert open_reader(url).model_names() == reference["names"]
        assert answers(open_reader(url), list(runs.values())) == reference
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(ConveyorError, match="refused the request") as refused:
            open_reader(url).model_names()
        assert "MLFLOW_TRACKING_USERNAME" in (refused.value.hint or "")
    finally:
        stop_mlflow_server(process)
