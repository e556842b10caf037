"""Lake credentials come from the environment's secrets, as the lab's service principal mount does."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import LakeError
from conveyor.lake import open_lake, parse_lake_url
from conveyor.lake.credentials import storage_options
from conveyor.secrets.redaction import redact

ABFSS = "abfss://datalake@lakeaccount.dfs.core.windows.net/census"


def test_service_principal_secrets_reach_adlfs(memory_store: type) -> None:
    from azure.identity.aio import ClientSecretCredential

    secrets = memory_store(
        {"sp-app-id": "app-id-7f3e", "sp-password": "sp-password-91c2d", "sp-tenant-id": "tenant-id-44ab"}
    )
    lake = open_lake(ABFSS, secrets, Path("/"))
    backend = lake.fs.fs
    assert (backend.account_name, backend.client_id, backend.tenant_id) == (
        "lakeaccount",
        "app-id-7f3e",
        "tenant-id-44ab",
    )
    assert isinstance(backend.credential, ClientSecretCredential)
    assert backend.account_url == "https://lakeaccount.blob.core.windows.net"
    assert lake.fs.path == "datalake/census"
    assert "sp-password-91c2d" not in repr(lake) + repr(lake.fs)
    assert redact("oops sp-password-91c2d") == "oops ***"


def test_partial_service_principal_is_named(memory_store: type) -> None:
    with pytest.raises(
        LakeError, match=r"partial service principal: sp-tenant-id \(or sp-token-endpoint\) missing"
    ) as partial:
        open_lake(ABFSS, memory_store({"sp-app-id": "a-1234-client-id", "sp-password": "partial-pw-5521"}), Path("/"))
    assert "partial-pw-5521" not in str(partial.value)


def test_fsspec_and_spark_read_the_same_credentials_by_the_same_rules(memory_store: type) -> None:
    """One reading: a full service principal wins over the account key for both; a principal known only by its
    token endpoint serves Spark, and fsspec (which needs the tenant) says so."""
    from conveyor.compute.hadoop import hadoop_settings

    location = parse_lake_url(ABFSS, Path("/"))
    principal = {"sp-app-id": "app-id-7f3e", "sp-password": "sp-password-91c2d", "sp-tenant-id": "tenant-id-44ab"}
    both = memory_store({**principal, "storage-account-key": "a2V5LWtleS1rZXk="})
    options = storage_options(location, both)
    assert options["client_id"] == "app-id-7f3e" and "account_key" not in options
    settings = hadoop_settings(location, both)
    assert settings["fs.azure.account.auth.type.lakeaccount.dfs.core.windows.net"] == "OAuth"
    by_endpoint = memory_store(
        {"sp-app-id": "app-id-7f3e", "sp-password": "sp-password-91c2d", "sp-token-endpoint": "https://t.example/token"}
    )
    assert (
        hadoop_settings(location, by_endpoint)[
            "fs.azure.account.oauth2.client.endpoint.lakeaccount.dfs.core.windows.net"
        ]
        == "https://t.example/token"
    )
    with pytest.raises(LakeError, match="sp-tenant-id is missing"):
        storage_options(location, by_endpoint)
    for read in (storage_options, hadoop_settings):  # the same partial principal is refused the same way
        with pytest.raises(LakeError, match=r"partial service principal: sp-password, sp-tenant-id"):
            read(location, memory_store({"sp-app-id": "app-id-7f3e"}))


def test_account_key_and_connection_string(memory_store: type) -> None:
    location = parse_lake_url(ABFSS, Path("/"))
    assert storage_options(location, memory_store({"storage-account-key": "a2V5LWtleS1rZXk="})) == {
        "account_name": "lakeaccount",
        "account_key": "a2V5LWtleS1rZXk=",
    }
    both = memory_store({"storage-account-key": "a2V5", "storage-connection-string": "AccountName=x;AccountKey=y"})
    assert storage_options(location, both)["connection_string"] == "AccountName=x;AccountKey=y"
    assert "account_key" not in storage_options(location, both)


def test_az_url_takes_account_from_secret_or_refuses(memory_store: type) -> None:
    location = parse_lake_url("az://datalake/census", Path("/"))
    assert storage_options(location, memory_store({"storage-account-name": "acct2"})) == {"account_name": "acct2"}
    with pytest.raises(LakeError, match="storage-account-name"):
        storage_options(location, memory_store({}))


def test_s3_secrets_and_default_chain(memory_store: type) -> None:
    location = parse_lake_url("s3://bucket/census", Path("/"))
    assert storage_options(location, None) == {}
    secrets = memory_store(
        {
            "aws-access-key-id": "AKIAEXAMPLEKEY12",
            "aws-secret-access-key": "s3-secret-4d1a9",
            "s3-endpoint-url": "http://127.0.0.1:9",
            "aws-region": "eu-west-1",
        }
    )
    assert storage_options(location, secrets) == {
        "key": "AKIAEXAMPLEKEY12",
        "secret": "s3-secret-4d1a9",
        "endpoint_url": "http://127.0.0.1:9",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert location.root == "bucket/census" and location.url_of("a.csv") == "s3://bucket/census/a.csv"


def test_local_lake_asks_for_no_secret(memory_store: type, tmp_path: Path) -> None:
    secrets = memory_store({})
    open_lake(f"file://{tmp_path}", secrets, tmp_path)
    assert secrets.asked == []
