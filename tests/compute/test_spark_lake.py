"""Spark and the lake: the lake's credentials as Hadoop settings (masked), and lineage of what Spark reads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from spark_projects import write_project

from conveyor.compute import train
from conveyor.compute.hadoop import ABFS_OAUTH_PROVIDER, hadoop_settings
from conveyor.config import load_project
from conveyor.errors import LakeError, SecretError
from conveyor.lake import open_lake, parse_lake_url
from conveyor.secrets.redaction import forget_all

APP_ID = "5d1f2c3b-app-0000-conveyor"
PASSWORD = "Sp~Pw0rd.conveyor.9f8e7d6c"
ENDPOINT = "https://login.microsoftonline.com/72f988bf-tenant/oauth2/token"
HOST = "conveyorlake.dfs.core.windows.net"
ABFSS = f"abfss://datalake@{HOST}/census"


class DictStore:
    """A secret store held in a dict."""

    url = "memory://test"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str:
        if key not in self.values:
            raise SecretError(f"secret {key!r} is missing")
        return self.values[key]

    def names(self) -> list[str]:
        return sorted(self.values)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


@pytest.fixture(autouse=True)
def _forget_secrets():
    yield
    forget_all()


def settings(url: str, secrets: dict[str, str]) -> dict[str, str]:
    return hadoop_settings(parse_lake_url(url, Path("/")), DictStore(secrets))


def test_abfss_gets_oauth_client_credentials_like_the_labs_mount() -> None:
    got = settings(ABFSS, {"sp-app-id": APP_ID, "sp-password": PASSWORD, "sp-token-endpoint": ENDPOINT})
    assert got == {
        f"fs.azure.account.auth.type.{HOST}": "OAuth",
        f"fs.azure.account.oauth.provider.type.{HOST}": ABFS_OAUTH_PROVIDER,
        f"fs.azure.account.oauth2.client.id.{HOST}": APP_ID,
        f"fs.azure.account.oauth2.client.secret.{HOST}": PASSWORD,
        f"fs.azure.account.oauth2.client.endpoint.{HOST}": ENDPOINT,
    }
    by_tenant = settings(ABFSS, {"sp-app-id": APP_ID, "sp-password": PASSWORD, "sp-tenant-id": "tenant-0a1b2c3d"})
    assert by_tenant[f"fs.azure.account.oauth2.client.endpoint.{HOST}"].endswith("/tenant-0a1b2c3d/oauth2/token")


def test_abfss_account_key_and_az_urls() -> None:
    key = settings(ABFSS, {"storage-account-key": "a2V5LWtleQ=="})
    assert key == {f"fs.azure.account.auth.type.{HOST}": "SharedKey", f"fs.azure.account.key.{HOST}": "a2V5LWtleQ=="}
    account = {"storage-account-name": "conveyorlake", "storage-account-key": "c3RvcmFnZS1rZXk="}
    az = settings("az://datalake/census", account)
    assert az[f"fs.azure.account.key.{HOST}"] == "c3RvcmFnZS1rZXk="


def test_abfss_partial_service_principal_is_named() -> None:
    with pytest.raises(
        LakeError, match=r"partial service principal: sp-password, sp-tenant-id \(or sp-token-endpoint\)"
    ):
        settings(ABFSS, {"sp-app-id": APP_ID})


def test_s3a_keys_are_scoped_to_the_lakes_bucket() -> None:
    got = settings(
        "s3://lake-stage/census",
        {
            "aws-access-key-id": "AKIAEXAMPLE",
            "aws-secret-access-key": "s3cr3t-key-conveyor",
            "aws-session-token": "session-token-conveyor",
            "s3-endpoint-url": "http://127.0.0.1:9000",
            "aws-region": "eu-west-1",
        },
    )
    prefix = "fs.s3a.bucket.lake-stage."
    assert got == {
        prefix + "access.key": "AKIAEXAMPLE",
        prefix + "secret.key": "s3cr3t-key-conveyor",
        prefix + "session.token": "session-token-conveyor",
        prefix + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider",
        prefix + "endpoint": "http://127.0.0.1:9000",
        prefix + "path.style.access": "true",
        prefix + "connection.ssl.enabled": "false",
        prefix + "endpoint.region": "eu-west-1",
    }
    assert settings("file:///tmp/lake", {"aws-access-key-id": "AKIAEXAMPLE"}) == {}


def test_spark_urls_are_spelled_for_hadoop_connectors(tmp_path: Path) -> None:
    s3 = open_lake("s3://lake-stage/census", DictStore({}), tmp_path)
    assert s3.hadoop_url_of("a/b.csv") == "s3a://lake-stage/census/a/b.csv"
    az = open_lake("az://datalake/census", DictStore({"storage-account-name": "conveyorlake"}), tmp_path)
    assert az.hadoop_url_of("a.csv") == f"abfss://datalake@{HOST}/census/a.csv"
    local = open_lake(f"file://{tmp_path}", None, tmp_path)
    assert local.hadoop_url_of("a.csv") == f"file://{tmp_path}/a.csv"


# -- with Spark (local mode, one JVM per test) ------------------------------------------------------------------

pytestmark_spark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")

CREDENTIALS_PROBE = f'''
import hashlib
import conveyor

ctx = conveyor.context()
spark = ctx.spark()
host = "{HOST}"
secret = spark.conf.get("fs.azure.account.oauth2.client.secret." + host)
hadoop = spark.sparkContext._jsc.hadoopConfiguration()
print("client secret in the session:", secret)
print("client id in Hadoop's configuration:", hadoop.get("fs.azure.account.oauth2.client.id." + host))
endpoint = spark.conf.get("fs.azure.account.oauth2.client.endpoint." + host)
print("endpoint sha256:", hashlib.sha256(endpoint.encode()).hexdigest())
print("auth type:", spark.conf.get("fs.azure.account.auth.type." + host))
print("secret sha256:", hashlib.sha256(secret.encode()).hexdigest())
print("redaction:", spark.conf.get("spark.redaction.regex"))
'''


@pytestmark_spark
@pytest.mark.slow
def test_spark_session_carries_the_lakes_credentials_masked(tmp_path: Path) -> None:
    secrets = {"datalake-fqdn": ABFSS, "sp-app-id": APP_ID, "sp-password": PASSWORD, "sp-token-endpoint": ENDPOINT}
    root = write_project(tmp_path / "probe", CREDENTIALS_PROBE, secrets)
    lines: list[str] = []
    train(load_project(root).environment("dev"), out=lines.append, err=lines.append)
    output = "".join(lines)
    assert "client secret in the session: ***" in output
    assert "client id in Hadoop's configuration: ***" in output
    assert f"endpoint sha256: {hashlib.sha256(ENDPOINT.encode()).hexdigest()}" in output  # the store masks it
    assert "auth type: OAuth" in output
    assert f"secret sha256: {hashlib.sha256(PASSWORD.encode()).hexdigest()}" in output
    assert "fs[.]azure[.]account[.]key" in output
    assert PASSWORD not in output and APP_ID not in output


LINEAGE_PROBE = """
import json
import conveyor

ctx = conveyor.context()
spark = ctx.spark()
folder = spark.read.csv(ctx.spark_url("parts"), header=True)
globbed = spark.read.csv(ctx.spark_url("more/*.csv"), header=True)
print("spark read: " + json.dumps(sorted(folder.inputFiles() + globbed.inputFiles())))
(ctx.output_dir / "rows.txt").write_text(str(folder.count() + globbed.count()))
ctx.register_model(ctx.output_dir, "probe")
"""


@pytestmark_spark
@pytest.mark.slow
def test_lineage_holds_exactly_the_files_spark_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "local[1]")
    lake = tmp_path / "lake"
    files = {
        "parts/part-00000.csv": "a,b\n1,2\n",
        "parts/part-00001.csv": "a,b\n3,4\n",
        "parts/_SUCCESS": "",
        "parts/.part-00000.csv.crc": "crc",
        "parts/_temporary/0/part-00002.csv": "a,b\n9,9\n",
        "more/x.csv": "a,b\n5,6\n",
        "more/y.csv": "a,b\n7,8\n",
        "more/_skipped.csv": "a,b\n0,0\n",
        "elsewhere.csv": "a,b\n0,0\n",
    }
    for name, text in files.items():
        (lake / name).parent.mkdir(parents=True, exist_ok=True)
        (lake / name).write_text(text)
    root = write_project(tmp_path / "probe", LINEAGE_PROBE, {"datalake-fqdn": f"file://{lake}"})
    lines: list[str] = []
    result = train(load_project(root).environment("dev"), out=lines.append, err=lines.append)

    output = "".join(lines)
    spark_read = json.loads(output.split("spark read: ", 1)[1].splitlines()[0])
    read_by_spark = sorted("/".join(url.split("/")[-2:]) for url in spark_read)  # the lake's URL is masked
    assert read_by_spark == ["more/x.csv", "more/y.csv", "parts/part-00000.csv", "parts/part-00001.csv"]
    tags = result.registered[0]["tags"]
    assert tags["data_files"].split(",") == read_by_spark
    lines_hashed = "".join(f"{name}\t{hashlib.sha256(files[name].encode()).hexdigest()}\n" for name in read_by_spark)
    assert tags["data_digest"] == "sha256:" + hashlib.sha256(lines_hashed.encode()).hexdigest()
