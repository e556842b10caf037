"""`compute = "databricks"` through the real databricks-sdk against a local server playing the workspace's REST API.

The stand-in also plays the cluster: the submitted Python wheel task really runs (the census model is trained by
the conveyor wheel that was uploaded), so the whole path is exercised: upload, runs/submit, state and log lines,
the outcome fetched, the model registered in the environment's registry. Recorded runs cover what a local process
cannot produce: a cancelled run, a failure on the cluster, a cluster that did not start; and a token the
workspace no longer accepts.
"""

from __future__ import annotations

import io
import os
import shutil
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks_workspace import DatabricksWorkspace

from conveyor.compute import train
from conveyor.compute.databricks.bundle import TASK_ENTRY_POINT, conveyor_wheel
from conveyor.compute.databricks.compute import upload_once
from conveyor.compute.databricks.job import task_spec
from conveyor.compute.databricks.workspace import mlflow_credentials, open_workspace, uses_workspace_registry
from conveyor.config import load_project
from conveyor.errors import CheckFailed, ConfigError
from conveyor.registry import ModelRegistry

pytestmark = pytest.mark.slow

TOKEN = "dapi-conveyor-0123456789abcdef"
SCOPE = "conveyor-dbx"
UPLOAD = "/Volumes/main/ml/conveyor"
CLUSTER = "0606-151100-abcd123"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabricksWorkspace]:
    standin = DatabricksWorkspace(tmp_path_factory.mktemp("databricks"))
    yield standin
    standin.close()


def section(host: str, extra: str = f'cluster_id = "{CLUSTER}"\n') -> str:
    return f'\n[environments.dbx.databricks]\nhost = "{host}"\nupload_path = "{UPLOAD}"\n' + extra


@pytest.fixture
def dbx_project(
    census_project: Path, tmp_path: Path, workspace: DatabricksWorkspace, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The census project with an environment `dbx` that trains on the stand-in workspace, on dev's lake data."""
    for name in [n for n in os.environ if n.startswith(("DATABRICKS_", "ARM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.databrickscfg"))
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)  # how this machine reads the secret scope
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    dev = load_project(copy).environment("dev")
    workspace.tokens.add(TOKEN)
    workspace.secrets[SCOPE] = {
        "datalake-fqdn": dev.lake_url,
        "alg-state": "dbx",
        "created-by": "dbx-bot",
        "databricks-token": TOKEN,
        "sp-app-id": "a1b2c3d4-sp-conveyor",
        "sp-password": "sp-Secret~conveyor-42",
    }
    with (copy / "conveyor.toml").open("a") as toml:
        toml.write(
            f'\n[environments.dbx]\nsecrets = "databricks://{SCOPE}?timeout=5"\nlake = "${{secret:datalake-fqdn}}"\n'
            'compute = "databricks"\nstate = "${secret:alg-state}"\ncreated_by = "${secret:created-by}"\n'
            + section(workspace.url)
        )
    return copy


def local_mae(trained_project: Path) -> str:
    env = load_project(trained_project).environment("dev")
    return ModelRegistry(env).resolve("worst_regression/1").tags["metric.mae"]


def test_census_trains_as_a_databricks_job_run(
    dbx_project: Path, workspace: DatabricksWorkspace, trained_project: Path
) -> None:
    env = load_project(dbx_project).environment("dbx")
    lines: list[str] = []
    result = train(env, out=lines.append, err=lines.append)
    output = "".join(lines)

    [version] = result.registered
    tags = version["tags"]
    assert (tags["state"], tags["created_by"], tags["data_files"]) == ("dbx", "dbx-bot", "AdultCensusIncome.csv")
    assert tags["metric.mae"] == local_mae(trained_project)  # trained for real, on the same data
    assert "git_commit" in tags  # from this machine's work tree
    assert ModelRegistry(env).resolve("worst_regression").version == version["version"]
    run = workspace.submitted[-1]
    [task] = run["tasks"]
    assert task["existing_cluster_id"] == CLUSTER
    assert task["python_wheel_task"]["entry_point"] == TASK_ENTRY_POINT
    wheel = task["libraries"][0]["whl"]
    assert wheel.startswith(f"{UPLOAD}/wheels/") and wheel.endswith("-py3-none-any.whl")
    assert zipfile.ZipFile(workspace.local(wheel)).read("conveyor/compute/databricks/task.py")
    assert "databricks run" in output and "RUNNING" in output and "TERMINATED SUCCESS" in output
    assert "read 600 rows from AdultCensusIncome.csv in the dbx lake" in output  # the task's log, passed on
    assert TOKEN not in output


def test_unchanged_artifacts_are_not_uploaded_again(dbx_project: Path, workspace: DatabricksWorkspace) -> None:
    ws = open_workspace(load_project(dbx_project).environment("dbx"))
    wheel = conveyor_wheel()
    first = upload_once(ws, "wheels", wheel)
    puts = [r for r in workspace.requests if r[0] == "PUT" and r[1].endswith(wheel.name)]
    assert upload_once(ws, "wheels", conveyor_wheel()) == first
    assert [r for r in workspace.requests if r[0] == "PUT" and r[1].endswith(wheel.name)] == puts
    assert workspace.local(first).read_bytes() == wheel.data


def test_a_script_failing_on_the_cluster_shows_its_error_and_log_tail(
    dbx_project: Path, workspace: DatabricksWorkspace
) -> None:
    (dbx_project / "train.py").write_text(
        "import conveyor\nctx = conveyor.context()\nprint('about to fit')\nraise ValueError('no rows to fit')\n"
    )
    env = load_project(dbx_project).environment("dbx")
    lines: list[str] = []
    with pytest.raises(CheckFailed) as info:
        train(env, out=lines.append, err=lines.append)
    message = str(info.value)
    assert info.value.exit_code == 1
    assert "failed" in message and "ValueError: no rows to fit" in message
    assert "last lines of its log:" in message and "about to fit" in message
    assert "nothing was registered" in message
    assert ModelRegistry(env).model_names() == []


def test_recorded_failure_shows_the_clusters_error_and_log_tail(
    dbx_project: Path, workspace: DatabricksWorkspace
) -> None:
    workspace.play_next_run("failed-run")
    with pytest.raises(CheckFailed) as info:
        train(load_project(dbx_project).environment("dbx"), out=lambda _: None, err=lambda _: None)
    message = str(info.value)
    assert "Task train failed with message: Workload failed" in message
    assert "AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION]" in message
    assert "last lines of its log:" in message and "read 600 rows" in message


def test_recorded_cancelled_run_exits_1(dbx_project: Path, workspace: DatabricksWorkspace) -> None:
    workspace.play_next_run("cancelled-run")
    lines: list[str] = []
    with pytest.raises(CheckFailed, match=r"databricks run \d+ was cancelled .*Run cancelled\.") as info:
        train(load_project(dbx_project).environment("dbx"), out=lines.append, err=lines.append)
    assert info.value.exit_code == 1
    assert "TERMINATED CANCELED" in "".join(lines)


def test_recorded_cluster_that_did_not_start(dbx_project: Path, workspace: DatabricksWorkspace) -> None:
    workspace.play_next_run("cluster-did-not-start")
    with pytest.raises(CheckFailed, match="CLOUD_PROVIDER_LAUNCH_FAILURE"):
        train(load_project(dbx_project).environment("dbx"), out=lambda _: None, err=lambda _: None)


def test_expired_token_exits_2_with_the_fix(
    dbx_project: Path, workspace: DatabricksWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    expired = "dapi-expired-0000"
    workspace.tokens.add(expired)  # the scope is still readable with this machine's token
    workspace.expired_tokens.add(expired)
    workspace.secrets[SCOPE]["databricks-token"] = expired
    workspace.tokens.discard(expired)
    from conveyor.cli.main import main

    code = main(["train", "--env", "dbx", "--project", str(dbx_project)])
    err = capsys.readouterr().err
    assert code == 2
    assert "refused the token in environments.dbx.databricks.token" in err
    assert "Invalid access token" in err
    assert "conveyor secrets set databricks-token --env dbx" in err
    assert expired not in err


def test_service_principal_signs_in_with_oauth(dbx_project: Path, workspace: DatabricksWorkspace) -> None:
    workspace.service_principals["a1b2c3d4-sp-conveyor"] = "sp-Secret~conveyor-42"
    text = (dbx_project / "conveyor.toml").read_text()
    principal = (
        f'cluster_id = "{CLUSTER}"\nclient_id = "${{secret:sp-app-id}}"\nclient_secret = "${{secret:sp-password}}"\n'
    )
    (dbx_project / "conveyor.toml").write_text(text.replace(f'cluster_id = "{CLUSTER}"\n', principal))
    workspace.play_next_run("cancelled-run")
    with pytest.raises(CheckFailed, match="was cancelled"):
        train(load_project(dbx_project).environment("dbx"), out=lambda _: None, err=lambda _: None)
    assert ("POST", "/oidc/v1/token") in workspace.requests


def test_secrets_in_a_local_file_are_refused_before_anything_is_uploaded(
    dbx_project: Path, workspace: DatabricksWorkspace
) -> None:
    text = (dbx_project / "conveyor.toml").read_text()
    dev_store = tomllib.loads(text)["environments"]["dev"]["secrets"]
    (dbx_project / "conveyor.toml").write_text(text.replace(f"databricks://{SCOPE}?timeout=5", dev_store))
    before = len(workspace.requests)
    with pytest.raises(ConfigError, match="cluster cannot read") as info:
        train(load_project(dbx_project).environment("dbx"), out=lambda _: None, err=lambda _: None)
    assert info.value.exit_code == 2
    assert len(workspace.requests) == before


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (
            'job_cluster = { spark_version = "15.4.x-scala2.12", node_type_id = "Standard_DS3_v2", num_workers = 2 }\n',
            "new_cluster",
        ),
        ("serverless = true\n", "environment_key"),
    ],
)
def test_job_cluster_and_serverless_task_specs(
    dbx_project: Path, workspace: DatabricksWorkspace, cluster: str, expected: str
) -> None:
    text = (dbx_project / "conveyor.toml").read_text()
    (dbx_project / "conveyor.toml").write_text(text.replace(f'cluster_id = "{CLUSTER}"\n', cluster))
    ws = open_workspace(load_project(dbx_project).environment("dbx"))
    spec = task_spec(ws, f"{UPLOAD}/wheels/x/conveyor.whl", ["--env", "dbx"])
    [task] = spec["tasks"]
    assert expected in task and "existing_cluster_id" not in task
    if expected == "new_cluster":
        assert task["new_cluster"]["num_workers"] == 2 and task["libraries"] == [
            {"whl": f"{UPLOAD}/wheels/x/conveyor.whl"}
        ]
    else:
        assert spec["environments"][0]["spec"]["dependencies"] == [f"{UPLOAD}/wheels/x/conveyor.whl"]


def test_wheel_is_reproducible_and_installable() -> None:
    first, second = conveyor_wheel(), conveyor_wheel()
    assert first.data == second.data
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "conveyor/compute/runner.py" in names
    assert any(n.endswith(".dist-info/RECORD") for n in names)
    assert not any("__pycache__" in n for n in names)


def test_workspace_registry_is_reached_with_the_environments_credentials(
    dbx_project: Path, workspace: DatabricksWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (dbx_project / "conveyor.toml").read_text()
    registry = 'compute = "databricks"\nregistry = "databricks"\n'
    (dbx_project / "conveyor.toml").write_text(text.replace('compute = "databricks"\n', registry))
    env = load_project(dbx_project).environment("dbx")
    assert uses_workspace_registry(env)
    opened = open_workspace(env)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-someone-elses-token")
    from mlflow import MlflowClient

    with mlflow_credentials(opened):
        assert MlflowClient(tracking_uri="databricks", registry_uri="databricks").search_registered_models() == []
    assert os.environ["DATABRICKS_TOKEN"] == "dapi-someone-elses-token"  # restored
    assert workspace.mlflow_tokens == [TOKEN]
