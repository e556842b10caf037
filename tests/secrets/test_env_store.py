"""env://PREFIX: secrets from environment variables, as CI systems hand them out."""

from __future__ import annotations

import pytest

from conveyor.errors import SecretError
from conveyor.secrets import open_store, redact
from conveyor.secrets.env import EnvSecretStore, variable_name


@pytest.fixture
def ci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_STAGE_SP_APP_ID", "5b1f3e0e-9a0c")
    monkeypatch.setenv("CONVEYOR_STAGE_DATALAKE_FQDN", "stagelake.example")
    monkeypatch.setenv("CONVEYOR_PROD_SP_APP_ID", "other-environment")


def test_keys_map_to_prefixed_upper_case_names() -> None:
    assert variable_name("CONVEYOR_DEV_", "sp-app-id") == "CONVEYOR_DEV_SP_APP_ID"
    assert variable_name("CI_", "eval.data-url") == "CI_EVAL_DATA_URL"


def test_get_reads_the_prefixed_variable_and_registers_it(ci_env: None) -> None:
    store = open_store("env://CONVEYOR_STAGE_")
    assert isinstance(store, EnvSecretStore)
    assert store.get("sp-app-id") == "5b1f3e0e-9a0c"
    assert redact("id 5b1f3e0e-9a0c") == "id ***"


def test_names_are_the_prefixed_variables_only(ci_env: None) -> None:
    assert open_store("env://CONVEYOR_STAGE_").names() == ["datalake-fqdn", "sp-app-id"]


def test_missing_variable_is_named(ci_env: None) -> None:
    with pytest.raises(SecretError) as caught:
        open_store("env://CONVEYOR_STAGE_").get("created-by")
    text = str(caught.value)
    assert "'created-by' is missing from store env://CONVEYOR_STAGE_" in text
    assert "CONVEYOR_STAGE_CREATED_BY is not set" in text and "Export CONVEYOR_STAGE_CREATED_BY" in text


def test_set_is_refused_with_the_variable_to_export() -> None:
    with pytest.raises(SecretError, match="read-only") as caught:
        open_store("env://CONVEYOR_STAGE_").set("sp-app-id", "new-value-123")
    assert "CONVEYOR_STAGE_SP_APP_ID" in str(caught.value)
    assert "new-value-123" not in str(caught.value)


@pytest.mark.parametrize("url", ["env://CONVEYOR-DEV", "env://CONVEYOR_DEV_/", "env://1ABC"])
def test_bad_prefix_is_refused(url: str) -> None:
    with pytest.raises(SecretError, match="bad variable prefix"):
        open_store(url)


def test_an_empty_variable_is_an_absent_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI hands a secret that was never set as an empty string: absent, not a (weak) value."""
    monkeypatch.setenv("CONVEYOR_GATES_STORAGE_ACCOUNT_KEY", "")
    monkeypatch.setenv("CONVEYOR_GATES_EVAL_DATA_URL", "file:///sealed/census-eval.csv")
    store = open_store("env://CONVEYOR_GATES_")
    assert store.names() == ["eval-data-url"]
    with pytest.raises(SecretError, match="not set or empty"):
        store.get("storage-account-key")
