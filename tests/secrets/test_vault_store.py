"""vault:// through the real hvac client against recorded Vault KV responses on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from recorded_api import RecordedAPI, recording

from conveyor.errors import SecretError
from conveyor.secrets import open_store, redact
from conveyor.secrets.vault import VaultLocation, VaultSecretStore, parse_vault_url

PUBLIC = frozenset({"alg-state", "created-by"})  # published by design, as an environment declares them
TOKEN = "hvs.CAESIJ3kQ9fake0token0for0tests0only0Xy"
DATA_PATH = "/v1/secret/data/conveyor/dev"


def vault(message: str) -> dict:
    return recording("vault", message)


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)


@pytest.fixture
def store(api: RecordedAPI, vault_env: None) -> VaultSecretStore:
    opened = open_store(f"vault://127.0.0.1:{api.port}/secret/conveyor/dev?tls=0", public_keys=PUBLIC)
    assert isinstance(opened, VaultSecretStore)
    return opened


def test_url_defaults_to_https_port_8200_and_kv2() -> None:
    assert parse_vault_url("vault://vault.example.com/secret/conveyor/dev") == VaultLocation(
        "https://vault.example.com:8200", "secret", "conveyor/dev", 2
    )
    assert parse_vault_url("vault://127.0.0.1:8300/kv/app?kv=1&tls=0") == VaultLocation(
        "http://127.0.0.1:8300", "kv", "app", 1
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("vault://vault.example.com/secret", "mount and a secret path"),
        ("vault:///secret/x", "names no host"),
        ("vault://h/secret/x?kv=3", "kv must be 1 or 2"),
        ("vault://h/secret/x?tls=no", "tls must be 0 or 1"),
        ("vault://h/secret/x?engine=kv", "unknown options: engine"),
    ],
)
def test_bad_urls_are_refused_with_the_url(url: str, words: str) -> None:
    with pytest.raises(SecretError, match=words) as caught:
        parse_vault_url(url)
    assert url in str(caught.value)


def test_get_reads_kv2_with_token_and_registers_the_value(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("kv2-read"))

    assert store.get("sp-app-secret") == "Qx8~vT3.kLm9_Zr2pW7sNf4Hd1yBc6Ja5Ue0Go"

    [request] = api.seen()
    assert (request.method, request.path) == ("GET", DATA_PATH)
    assert request.headers["x-vault-token"] == TOKEN
    assert "x-vault-namespace" not in request.headers
    assert redact("secret is Qx8~vT3.kLm9_Zr2pW7sNf4Hd1yBc6Ja5Ue0Go") == "secret is ***"
    assert redact("5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a") != "***"  # read alongside, not handed out
    assert redact(f"token {TOKEN}") == "token ***"


def test_namespace_and_token_file_are_used(
    api: RecordedAPI, store: VaultSecretStore, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    (tmp_path / ".vault-token").write_text("hvs.from-the-token-file\n")
    monkeypatch.setenv("VAULT_NAMESPACE", "admin/analytics")
    api.answer("GET", DATA_PATH, vault("kv2-read"))

    assert store.get("sp-app-id") == "5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a"
    [request] = api.seen()
    assert request.headers["x-vault-token"] == "hvs.from-the-token-file"
    assert request.headers["x-vault-namespace"] == "admin/analytics"


def test_names_are_the_keys_of_the_secret(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("kv2-read"))
    assert store.names() == ["datalake-fqdn", "sp-app-id", "sp-app-secret"]


def test_missing_key_names_key_and_store_but_no_value(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("kv2-read"))
    with pytest.raises(SecretError) as caught:
        store.get("eval-data-url")
    text = str(caught.value)
    assert "'eval-data-url'" in text and store.url in text
    assert "conveyor secrets set eval-data-url" in text
    assert "Qx8~vT3" not in text and "5b1f3e0e" not in text


def test_forbidden_says_access_denied_and_how_to_log_in(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("permission-denied"))
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-id")
    text = str(caught.value)
    assert "denied access" in text and "'sp-app-id'" in text and store.url in text
    assert "vault login" in text and "VAULT_TOKEN" in text
    assert TOKEN not in text


def test_absent_secret_says_it_does_not_exist(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("not-found"))
    with pytest.raises(SecretError, match=r"secret/conveyor/dev .*does not exist") as caught:
        store.names()
    assert "?kv=1" in str(caught.value)


def test_sealed_vault_is_reported(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("sealed"))
    with pytest.raises(SecretError, match="sealed"):
        store.get("sp-app-id")


def test_set_merges_into_the_secret_with_check_and_set(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("kv2-read"))
    api.answer("POST", DATA_PATH, vault("kv2-write"))

    store.set("db-password", "dev-candidate")

    write = api.seen("POST")[0]
    assert write.headers["x-vault-token"] == TOKEN
    assert write.json() == {
        "options": {"cas": 3},
        "data": {
            "db-password": "dev-candidate",
            "datalake-fqdn": "conveyordevlake.dfs.core.windows.net",
            "sp-app-id": "5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a",
            "sp-app-secret": "Qx8~vT3.kLm9_Zr2pW7sNf4Hd1yBc6Ja5Ue0Go",
        },
    }
    assert redact("dev-candidate") == "***"


def test_set_creates_an_absent_secret_only_if_still_absent(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("not-found"))
    api.answer("POST", DATA_PATH, vault("kv2-write"))
    store.set("created-by", "alice")
    assert api.seen("POST")[0].json() == {"options": {"cas": 0}, "data": {"created-by": "alice"}}


def test_concurrent_change_is_reported_without_the_value(api: RecordedAPI, store: VaultSecretStore) -> None:
    api.answer("GET", DATA_PATH, vault("kv2-read"))
    api.answer("POST", DATA_PATH, vault("kv2-cas-mismatch"))
    with pytest.raises(SecretError, match="check-and-set") as caught:
        store.set("alg-state", "value-not-to-show")
    assert "retry" in str(caught.value).lower()
    assert "value-not-to-show" not in str(caught.value)


def test_kv_version_1_reads_and_writes_the_plain_path(api: RecordedAPI, vault_env: None) -> None:
    store = open_store(f"vault://127.0.0.1:{api.port}/kv/conveyor/stage?kv=1&tls=0", public_keys=PUBLIC)
    api.answer("GET", "/v1/kv/conveyor/stage", vault("kv1-read"))
    api.answer("POST", "/v1/kv/conveyor/stage", vault("kv1-write"))

    assert store.get("alg-state") == "stage"
    store.set("created-by", "ci-bot")

    assert [(r.method, r.path) for r in api.seen()] == [
        ("GET", "/v1/kv/conveyor/stage"),
        ("GET", "/v1/kv/conveyor/stage"),
        ("POST", "/v1/kv/conveyor/stage"),
    ]
    assert api.seen("POST")[0].json() == {
        "alg-state": "stage",
        "created-by": "ci-bot",
        "datalake-fqdn": "conveyorstagelake.dfs.core.windows.net",
    }


def test_no_token_is_reported_before_any_request(
    api: RecordedAPI, store: VaultSecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(SecretError, match="no Vault token") as caught:
        store.get("sp-app-id")
    assert "VAULT_TOKEN" in str(caught.value) and "vault login" in str(caught.value)
    assert api.seen() == []


def test_unreachable_vault_is_reported(vault_env: None) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = open_store(f"vault://127.0.0.1:{port}/secret/conveyor/dev?tls=0")
    with pytest.raises(SecretError, match=rf"cannot reach Vault at http://127.0.0.1:{port}"):
        store.get("sp-app-id")
