"""The Hadoop settings that let Spark read an environment's lake with the environment's credentials.

The credentials are read as the lake reads them (`conveyor.lake.credentials`, one set of rules). Azure
(`abfss://`, `az://`): OAuth client credentials of the service principal (its token endpoint `sp-token-endpoint`,
or its tenant's), else the account key; each setting is scoped to the lake's storage account. S3 (`s3://`, read
by Spark as `s3a://`): the key pair, session token, region and endpoint, scoped to the lake's bucket. Every
value read from the store is masked in conveyor's output; the settings holding credentials match
Spark's own redaction pattern (`REDACTION_REGEX`), so Spark masks them in its UI and event logs too.

The connectors themselves are not part of PySpark: a cluster needs `hadoop-azure` (abfss) or `hadoop-aws` with
the AWS SDK bundle (s3a) on its classpath, in the version of its Hadoop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import LakeError
from conveyor.lake.credentials import AzureCredentials, s3_credentials
from conveyor.lake.location import LakeLocation, parse_lake_url

if TYPE_CHECKING:
    from conveyor.config import Environment
    from conveyor.secrets.base import SecretStore

ABFS_HOST = "dfs.core.windows.net"
ABFS_OAUTH_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
S3A_SESSION_PROVIDER = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
# Spark's default pattern, plus the ABFS account key and OAuth client id (masked in Spark's UI and event logs).
REDACTION_REGEX = r"(?i)secret|password|token|access[.]key|fs[.]azure[.]account[.]key|oauth2[.]client[.]id"


def lake_hadoop_settings(environment: Environment) -> dict[str, str]:
    """The Hadoop settings for the environment's lake (empty for a local lake); they hold credentials."""
    location = parse_lake_url(environment.lake_url, environment.project.root)
    return hadoop_settings(location, environment.secrets)


def hadoop_settings(location: LakeLocation, secrets: SecretStore | None) -> dict[str, str]:
    """Hadoop settings for `location` from `secrets`; never print them."""
    if location.kind == "azure":
        return _abfs(location, secrets)
    if location.kind == "s3":
        return _s3a(location, secrets)
    return {}


def abfs_host(location: LakeLocation, account: str | None) -> str:
    """`ACCOUNT.dfs.core.windows.net` (or the host the URL names) of an Azure lake."""
    host = location.url.split("://", 1)[1].split("/", 1)[0].partition("@")[2]
    if host:
        return host
    if not account:
        raise LakeError(
            f"the lake URL {location.url} names no storage account",
            hint="Use abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, or set the secret `storage-account-name`.",
        )
    return f"{account}.{ABFS_HOST}"


def _abfs(location: LakeLocation, secrets: SecretStore | None) -> dict[str, str]:
    credentials = AzureCredentials(location, secrets)
    host = abfs_host(location, credentials.account)
    principal = credentials.principal
    if principal is not None:
        return {
            f"fs.azure.account.auth.type.{host}": "OAuth",
            f"fs.azure.account.oauth.provider.type.{host}": ABFS_OAUTH_PROVIDER,
            f"fs.azure.account.oauth2.client.id.{host}": principal.client_id,
            f"fs.azure.account.oauth2.client.secret.{host}": principal.client_secret,
            f"fs.azure.account.oauth2.client.endpoint.{host}": principal.token_endpoint,
        }
    if credentials.account_key:
        return {
            f"fs.azure.account.auth.type.{host}": "SharedKey",
            f"fs.azure.account.key.{host}": credentials.account_key,
        }
    return {}  # the cluster's own identity (e.g. a managed identity configured on it)


def _s3a(location: LakeLocation, secrets: SecretStore | None) -> dict[str, str]:
    credentials = s3_credentials(secrets)
    bucket = location.root.split("/", 1)[0]
    prefix = f"fs.s3a.bucket.{bucket}."
    settings: dict[str, str] = {}
    if credentials.key and credentials.secret:
        settings[prefix + "access.key"] = credentials.key
        settings[prefix + "secret.key"] = credentials.secret
        if credentials.token:
            settings[prefix + "session.token"] = credentials.token
            settings[prefix + "aws.credentials.provider"] = S3A_SESSION_PROVIDER
    endpoint = credentials.endpoint_url
    if endpoint:
        settings[prefix + "endpoint"] = endpoint
        settings[prefix + "path.style.access"] = "true"
        settings[prefix + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    if credentials.region:
        settings[prefix + "endpoint.region"] = credentials.region
    return settings
