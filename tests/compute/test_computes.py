"""The `COMPUTES` table: the project file accepts exactly its engines, and each entry resolves to a `Compute`."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from conveyor.compute import compute_for
from conveyor.config import load_project
from conveyor.config.computes import COMPUTES, compute_entry
from conveyor.errors import ConfigError

PROJECT = """
[project]
name = "demo"

[environments.dev]
secrets = "file://secrets/dev.toml"
lake = "file://lake/dev"
compute = "{compute}"
"""

DATABRICKS = """
[environments.dev.databricks]
host = "https://adb-1234567890123456.7.azuredatabricks.net"
upload_path = "/Volumes/main/default/conveyor"
cluster_id = "0606-151100-abcd123"
"""

EXAMPLES = {
    "local": "local",
    "spark": "spark",
    "spark://": "spark://127.0.0.1:7077",
    "sc://": "sc://127.0.0.1:15002",
    "databricks": "databricks",
}


def project_with(tmp_path: Path, compute: str, extra: str = "") -> Path:
    (tmp_path / "conveyor.toml").write_text(PROJECT.format(compute=compute) + extra)
    return tmp_path


def test_every_entry_has_an_example_here() -> None:
    assert set(EXAMPLES) == set(COMPUTES), "add an example setting for the new engine"


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_each_entry_is_accepted_and_resolves_to_its_class(tmp_path: Path, key: str) -> None:
    setting = EXAMPLES[key]
    env = load_project(project_with(tmp_path, setting, DATABRICKS if key == "databricks" else "")).environment("dev")
    assert env.compute == setting
    assert compute_entry(setting) is COMPUTES[key]
    engine = compute_for(env)
    module, _, name = COMPUTES[key].implementation.partition(":")
    assert type(engine) is getattr(importlib.import_module(module), name)
    assert callable(engine.train) and callable(engine.spark_session)


@pytest.mark.parametrize("bad", ["lcoal", "spark://", "sc://", "databricks://workspace", "spark://host :7077", "yarn"])
def test_settings_outside_the_table_are_refused_with_the_accepted_forms(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(project_with(tmp_path, bad))
    message = str(info.value)
    assert str(tmp_path / "conveyor.toml") in message
    assert "environments.dev.compute" in message
    assert repr(bad) in message
    for entry in COMPUTES.values():  # the accepted ones are read from the table
        assert entry.form in message


def test_databricks_needs_its_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environments\.dev\.compute = 'databricks': needs a \[databricks\] section"):
        load_project(project_with(tmp_path, "databricks"))


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (DATABRICKS.replace('cluster_id = "0606-151100-abcd123"', ""), "name exactly one cluster"),
        (DATABRICKS + "serverless = true\n", "this section names cluster_id, serverless"),
        (DATABRICKS.replace("/Volumes/main", "dbfs:/tmp"), "environments.dev.databricks.upload_path"),
        (DATABRICKS + 'client_id = "${secret:sp-app-id}"\n', "needs both client_id and client_secret"),
        (DATABRICKS + 'timeout = "soon"\n', "environments.dev.databricks.timeout"),
        (DATABRICKS + 'colour = "blue"\n', "environments.dev.databricks.colour: unknown key"),
    ],
)
def test_databricks_section_is_validated(tmp_path: Path, section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(project_with(tmp_path, "databricks", section))
    assert expected in str(info.value)


def test_databricks_credentials_are_required_secrets(tmp_path: Path) -> None:
    token = load_project(project_with(tmp_path, "databricks", DATABRICKS)).environment("dev")
    assert token.required_secrets() == ["databricks-token"]
    principal = DATABRICKS + (
        'client_id = "${secret:sp-app-id}"\n'
        'client_secret = "${secret:sp-password}"\n'
        'tenant_id = "${secret:sp-tenant-id}"\n'
    )
    env = load_project(
        project_with(
            tmp_path,
            "databricks",
            principal.replace('"https://adb-1234567890123456.7.azuredatabricks.net"', '"${secret:dbx-host}"'),
        )
    )
    assert env.environment("dev").required_secrets() == ["dbx-host", "sp-app-id", "sp-password", "sp-tenant-id"]
