"""azure-keyvault:// through the real SecretClient pipeline (challenge auth, paging, errors) against recorded
Key Vault responses. A requests adapter under the SDK's own RequestsTransport carries every https request to
the local server, keeping the original host in the Host header."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from recorded_api import RecordedAPI, SeenRequest, recording
from requests.adapters import HTTPAdapter

from conveyor.errors import SecretError
from conveyor.secrets import open_store, redact
from conveyor.secrets.azure_keyvault import (
    AzureKeyVaultSecretStore,
    credential_from_environment,
    secret_name,
    vault_url_from,
)

VAULT_HOST = "conveyor-dev.vault.azure.net"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class LoopbackAdapter(HTTPAdapter):
    """Sends each request to 127.0.0.1:PORT over plain HTTP; the server still sees the intended Host."""

    def __init__(self, port: int) -> None:
        super().__init__(max_retries=0)
        self.port = port

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        request.headers["Host"] = parts.hostname
        request.url = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))
        return super().send(request, **kwargs)


def loopback_transport(port: int) -> RequestsTransport:
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", LoopbackAdapter(port))
    return RequestsTransport(session=session, session_owner=False)


class FakeCredential:
    """A TokenCredential that hands out a fixed bearer token and remembers the scopes it was asked for."""

    def __init__(self, error: Exception | None = None) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.error = error

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.error:
            raise self.error
        return AccessToken("fake-aad-token", int(time.time()) + 3600)


def bearer_only(name: str) -> Any:
    """Key Vault's behaviour: a request without a bearer token gets the 401 challenge, else the recording."""

    def respond(request: SeenRequest) -> dict[str, Any]:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return recording("azure_keyvault", "challenge")
        return recording("azure_keyvault", name)

    return respond


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def store(api: RecordedAPI, credential: FakeCredential) -> AzureKeyVaultSecretStore:
    return AzureKeyVaultSecretStore(
        f"https://{VAULT_HOST}",
        "azure-keyvault://conveyor-dev",
        credential=credential,
        transport=loopback_transport(api.port),
        retry_total=0,
    )


def authorized(api: RecordedAPI) -> list[SeenRequest]:
    return [r for r in api.requests if "authorization" in r.headers]


def test_vault_names_become_vault_urls() -> None:
    assert vault_url_from("azure-keyvault://conveyor-dev") == "https://conveyor-dev.vault.azure.net"
    assert vault_url_from("azure-keyvault://Conveyor-CN.vault.azure.cn") == "https://conveyor-cn.vault.azure.cn"
    for bad in ("azure-keyvault://ab", "azure-keyvault://bad_name", "azure-keyvault://a--b-vault", "azure-keyvault://"):
        with pytest.raises(SecretError, match="does not name a vault"):
            vault_url_from(bad)


def test_keys_map_to_key_vault_names_or_are_refused() -> None:
    assert secret_name("sp-app-id") == "sp-app-id"
    assert secret_name("datalake_fqdn") == "datalake-fqdn"
    assert secret_name("eval.data.url") == "eval-data-url"
    for bad in ("path/to", "with space", "é", "x" * 128, ""):
        with pytest.raises(SecretError, match="letters, digits and dashes"):
            secret_name(bad)


def test_open_store_builds_the_backend_from_the_url() -> None:
    store = open_store("azure-keyvault://conveyor-dev")
    assert isinstance(store, AzureKeyVaultSecretStore)
    assert store.vault_url == "https://conveyor-dev.vault.azure.net"
    assert store.url == "azure-keyvault://conveyor-dev"


def test_get_answers_the_challenge_with_a_vault_token(
    api: RecordedAPI, store: AzureKeyVaultSecretStore, credential: FakeCredential
) -> None:
    api.answer("GET", "/secrets/sp-app-id/", bearer_only("get-secret"))

    assert store.get("sp-app-id") == "5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a"

    [request] = authorized(api)
    assert request.headers["host"] == VAULT_HOST
    assert request.headers["authorization"] == "Bearer fake-aad-token"
    assert request.query["api-version"]
    assert ("https://vault.azure.net/.default",) in credential.scopes
    assert redact("id=5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a") == "id=***"


def test_names_follow_next_links_and_skip_certificate_secrets(
    api: RecordedAPI, store: AzureKeyVaultSecretStore
) -> None:
    api.answer("GET", "/secrets", bearer_only("list-secrets-page-2"), maxresults="2")
    api.answer("GET", "/secrets", bearer_only("list-secrets-page-1"))

    assert store.names() == ["datalake-fqdn", "sp-app-id", "sp-app-secret"]

    pages = authorized(api)
    assert [p.path for p in pages] == ["/secrets", "/secrets"]
    assert "$skiptoken" not in pages[0].query and pages[1].query["$skiptoken"].startswith("eyJOZXh0")


def test_set_puts_the_value_under_the_mapped_name(api: RecordedAPI, store: AzureKeyVaultSecretStore) -> None:
    api.answer("PUT", "/secrets/datalake-fqdn", bearer_only("set-secret"))

    store.set("datalake_fqdn", "conveyordevlake.dfs.core.windows.net")

    [put] = authorized(api)
    assert put.json()["value"] == "conveyordevlake.dfs.core.windows.net"
    assert put.headers["host"] == VAULT_HOST
    assert redact("conveyordevlake.dfs.core.windows.net") == "***"


def test_missing_secret_names_key_and_store(api: RecordedAPI, store: AzureKeyVaultSecretStore) -> None:
    api.answer("GET", "/secrets/missing-key/", bearer_only("secret-not-found"))
    with pytest.raises(SecretError) as caught:
        store.get("missing-key")
    text = str(caught.value)
    assert "'missing-key' is missing from store azure-keyvault://conveyor-dev" in text
    assert "conveyor secrets set missing-key" in text


def test_forbidden_says_which_role_to_grant(api: RecordedAPI, store: AzureKeyVaultSecretStore) -> None:
    api.answer("GET", "/secrets/sp-app-id/", bearer_only("forbidden"))
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-id")
    text = str(caught.value)
    assert "denied access" in text and "'sp-app-id'" in text
    assert "Caller is not authorized" in text
    assert "Key Vault Secrets User" in text


def test_refused_name_sends_nothing(api: RecordedAPI, store: AzureKeyVaultSecretStore) -> None:
    with pytest.raises(SecretError, match="'eval/data'"):
        store.get("eval/data")
    assert api.requests == []


def test_credential_failure_says_how_to_log_in(api: RecordedAPI) -> None:
    failing = FakeCredential(ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token."))
    store = AzureKeyVaultSecretStore(
        f"https://{VAULT_HOST}", credential=failing, transport=loopback_transport(api.port), retry_total=0
    )
    api.answer("GET", "/secrets/sp-app-id/", bearer_only("get-secret"))
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-id")
    text = str(caught.value)
    assert "no valid Azure credential" in text and "az login" in text and "AZURE_CLIENT_ID" in text


def test_unreachable_vault_is_reported(credential: FakeCredential) -> None:
    store = AzureKeyVaultSecretStore(
        "https://conveyor-dev.vault.azure.net", credential=credential, transport=loopback_transport(1), retry_total=0
    )
    with pytest.raises(SecretError, match=r"cannot reach https://conveyor-dev\.vault\.azure\.net"):
        store.names()


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"):
        monkeypatch.delenv(name, raising=False)


def test_service_principal_variables_choose_client_secret_credential(
    monkeypatch: pytest.MonkeyPatch, no_azure_env: None
) -> None:
    assert isinstance(credential_from_environment(), DefaultAzureCredential)
    monkeypatch.setenv("AZURE_CLIENT_ID", "0b6f2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d")
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    assert isinstance(credential_from_environment(), DefaultAzureCredential)  # all three are needed
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "sp~secret~not~to~print~0123")
    assert isinstance(credential_from_environment(), ClientSecretCredential)
    assert redact("sp~secret~not~to~print~0123") == "***"


def test_service_principal_signs_in_and_reads_a_secret(
    api: RecordedAPI, monkeypatch: pytest.MonkeyPatch, no_azure_env: None
) -> None:
    """The whole path from the environment: ClientSecretCredential signs in at Entra ID, then reads the vault."""
    monkeypatch.setenv("AZURE_CLIENT_ID", "0b6f2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d")
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "sp~secret~value~0123")
    api.answer(
        "GET", f"/{TENANT}/v2.0/.well-known/openid-configuration", recording("azure_keyvault", "openid-configuration")
    )
    api.answer("POST", f"/{TENANT}/oauth2/v2.0/token", recording("azure_keyvault", "client-credentials-token"))
    api.answer("GET", "/secrets/sp-app-id/", bearer_only("get-secret"))
    store = AzureKeyVaultSecretStore.from_url(
        "azure-keyvault://conveyor-sp", None, transport=loopback_transport(api.port), retry_total=0
    )

    assert store.get("sp-app-id") == "5b1f3e0e-9a0c-4f4e-8a4d-2c0f1d3e6b7a"

    [token_request] = api.seen("POST")
    assert token_request.headers["host"] == "login.microsoftonline.com"
    form = dict(pair.split("=", 1) for pair in token_request.body.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == "0b6f2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d"
    assert form["scope"] == "https%3A%2F%2Fvault.azure.net%2F.default"
    [read] = [r for r in api.seen("GET", "/secrets/sp-app-id/") if "authorization" in r.headers]
    assert read.headers["host"] == "conveyor-sp.vault.azure.net"
    assert read.headers["authorization"].startswith("Bearer eyJ0eXAiOiJKV1Qi")


def test_rejected_service_principal_is_a_credential_error(
    api: RecordedAPI, monkeypatch: pytest.MonkeyPatch, no_azure_env: None
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "0b6f2c1e-1111-4a2b-9c3d-5e6f7a8b9c0d")
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "sp~wrong~value~0123")
    api.answer(
        "GET", f"/{TENANT}/v2.0/.well-known/openid-configuration", recording("azure_keyvault", "openid-configuration")
    )
    api.answer("POST", f"/{TENANT}/oauth2/v2.0/token", recording("azure_keyvault", "invalid-client-secret"))
    api.answer("GET", "/common/discovery/instance", recording("azure_keyvault", "instance-discovery"))
    api.answer("GET", "/secrets/sp-app-id/", bearer_only("get-secret"))
    store = AzureKeyVaultSecretStore.from_url(
        "azure-keyvault://conveyor-sp2", None, transport=loopback_transport(api.port), retry_total=0
    )
    with pytest.raises(SecretError) as caught:
        store.get("sp-app-id")
    text = str(caught.value)
    assert "no valid Azure credential" in text and "AADSTS7000215" in text
    assert "sp~wrong~value~0123" not in text
    assert not [r for r in api.seen("GET", "/secrets/sp-app-id/") if "authorization" in r.headers]
