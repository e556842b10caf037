"""databricks:// through the real databricks-sdk WorkspaceClient against recorded secrets API responses."""

from __future__ import annotations

import socket

import pytest
from recorded_api import RecordedAPI, recording

from conveyor.errors import SecretError
from conveyor.secrets import open_store, redact
from conveyor.secrets.databricks import DatabricksSecretStore, parse_databricks_url

TOKEN = "dapi0123456789abcdef0123456789abcdef"
SECRET = "Qx8~vT3.kLm9_Zr2pW7sNf4Hd1yBc6Ja5Ue0Go"


def databricks(name: str) -> dict:
    return recording("databricks", name)


@pytest.fixture
def workspace(api: RecordedAPI, monkeypatch: pytest.MonkeyPatch, tmp_path) -> RecordedAPI:
    """DATABRICKS_HOST/DATABRICKS_TOKEN point at the recorded server; no other Databricks setting leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.databrickscfg"))
    monkeypatch.setenv("DATABRICKS_HOST", api.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    api.answer("GET", "/.well-known/databricks-config", databricks("host-metadata-absent"))
    return api


@pytest.fixture
def store(workspace: RecordedAPI) -> DatabricksSecretStore:
    opened = open_store("databricks://conveyor-dev?timeout=2")
    assert isinstance(opened, DatabricksSecretStore)
    return opened


def api_calls(api: RecordedAPI) -> list:
    return [r for r in api.requests if r.path.startswith("/api/")]


def test_url_names_scope_profile_and_timeout() -> None:
    assert parse_databricks_url("databricks://conveyor-dev") == (None, "conveyor-dev", 10)
    assert parse_databricks_url("databricks://prod@conveyor.prod_1?timeout=5") == ("prod", "conveyor.prod_1", 5)
    for bad in ("databricks://", "databricks://a b", "databricks://p q@scope", "databricks://s/t"):
        with pytest.raises(SecretError, match="does not name a secret scope"):
            parse_databricks_url(bad)
    with pytest.raises(SecretError, match="timeout must be"):
        parse_databricks_url("databricks://s?timeout=soon")
    with pytest.raises(SecretError, match="unknown options: cluster"):
        parse_databricks_url("databricks://s?cluster=1")


def test_get_decodes_base64_and_registers_the_value(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    workspace.answer("GET", "/api/2.0/secrets/get", databricks("get-secret"), scope="conveyor-dev")

    assert store.get("sp-app-secret") == SECRET

    [request] = api_calls(workspace)
    assert request.query == {"scope": "conveyor-dev", "key": "sp-app-secret"}
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert redact(f"value {SECRET} token {TOKEN}") == "value *** token ***"


def test_names_lists_the_scope(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    workspace.answer("GET", "/api/2.0/secrets/list", databricks("list-secrets"), scope="conveyor-dev")
    assert store.names() == ["alg-state", "datalake-fqdn", "sp-app-secret"]


def test_set_puts_a_string_value(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    workspace.answer("POST", "/api/2.0/secrets/put", databricks("put-secret"))

    store.set("created-by", "ci-bot@example.com")

    [request] = api_calls(workspace)
    assert request.json() == {"scope": "conveyor-dev", "key": "created-by", "string_value": "ci-bot@example.com"}
    assert redact("by ci-bot@example.com") == "by ***"


def test_missing_key_names_key_and_store(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    workspace.answer("GET", "/api/2.0/secrets/get", databricks("secret-not-found"))
    with pytest.raises(SecretError) as caught:
        store.get("missing-key")
    text = str(caught.value)
    assert "'missing-key' is missing from store databricks://conveyor-dev?timeout=2" in text
    assert "conveyor secrets set missing-key" in text


def test_missing_scope_says_how_to_create_it(workspace: RecordedAPI) -> None:
    workspace.answer("GET", "/api/2.0/secrets/list", databricks("scope-not-found"))
    store = open_store("databricks://conveyor-nope?timeout=2")
    with pytest.raises(SecretError, match="scope 'conveyor-nope' does not exist") as caught:
        store.names()
    assert "databricks secrets create-scope conveyor-nope" in str(caught.value)


@pytest.mark.parametrize("answer", ["permission-denied", "invalid-token"])
def test_refused_access_says_what_to_check(workspace: RecordedAPI, store: DatabricksSecretStore, answer: str) -> None:
    workspace.answer("GET", "/api/2.0/secrets/get", databricks(answer))
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-secret")
    text = str(caught.value)
    assert "denied access to scope 'conveyor-dev'" in text and "'sp-app-secret'" in text
    assert "DATABRICKS_TOKEN" in text and "put-acl" in text
    assert TOKEN not in text


def test_binary_secret_is_refused_without_showing_it(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    workspace.answer("GET", "/api/2.0/secrets/get", databricks("get-secret-binary"))
    with pytest.raises(SecretError, match=r"'keystore' in store .* is not UTF-8 text") as caught:
        store.get("keystore")
    assert "/u3+7Q" not in str(caught.value)


def test_invalid_key_sends_nothing(workspace: RecordedAPI, store: DatabricksSecretStore) -> None:
    with pytest.raises(SecretError, match="'eval/data' cannot be stored"):
        store.set("eval/data", "x")
    assert api_calls(workspace) == []


def test_profile_from_the_config_file(workspace: RecordedAPI, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    config = tmp_path / "databrickscfg"
    config.write_text(f"[analytics]\nhost = {workspace.url}\ntoken = dapi-profile-token-0000\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    workspace.answer("GET", "/api/2.0/secrets/list", databricks("list-secrets"), scope="conveyor-dev")

    store = open_store("databricks://analytics@conveyor-dev?timeout=2")

    assert store.names() == ["alg-state", "datalake-fqdn", "sp-app-secret"]
    [request] = api_calls(workspace)
    assert request.headers["authorization"] == "Bearer dapi-profile-token-0000"
    assert redact("dapi-profile-token-0000") == "***"


def test_no_credentials_says_how_to_log_in(workspace: RecordedAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    store = open_store("databricks://conveyor-dev?timeout=2")
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-secret")
    text = str(caught.value)
    assert "cannot connect store databricks://conveyor-dev?timeout=2" in text
    assert "DATABRICKS_HOST" in text and "databricks auth login" in text
    assert workspace.requests == []


def test_unreachable_workspace_is_reported(workspace: RecordedAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{port}")
    store = open_store("databricks://conveyor-dev?timeout=1")
    with pytest.raises(SecretError, match="cannot reach the Databricks workspace") as caught:
        store.get("sp-app-secret")
    assert "DATABRICKS_HOST" in str(caught.value)


def test_a_workspace_that_never_answers_fails_within_ten_seconds_by_default(
    workspace: RecordedAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that takes the connection and then says nothing (a firewall, a dead proxy): an error, not silence."""
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing is ever read or answered
        monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{silent.getsockname()[1]}")
        store = open_store("databricks://conveyor-dev")
        started = time.monotonic()
        with pytest.raises(SecretError, match="cannot reach the Databricks workspace") as caught:
            store.get("sp-app-secret")
        assert time.monotonic() - started < 12
    assert "DATABRICKS_HOST" in str(caught.value)
