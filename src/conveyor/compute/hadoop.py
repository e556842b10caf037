"""The Hadoop settings that let Spark read an environment's lake with the environment's credentials.

Azure (`abfss://`, `az://`), as the lab mounts its lake: OAuth client credentials from `sp-app-id`, `sp-password`
and `sp-token-endpoint` (or the endpoint of `sp-tenant-id`), else the account key `storage-account-key`; each
setting is scoped to the lake's storage account. S3 (`s3://`, read by Spark as `s3a://`): `aws-access-key-id`,
`aws-secret-access-key`, optional `aws-session-token`, `aws-region` and `s3-endpoint-url`, scoped to the lake's
bucket. Every value read from the store is masked in conveyor's output; the settings holding credentials match
Spark's own redaction pattern (`REDACTION_REGEX`), so Spark masks them in its UI and event logs too.

The connectors themselves are not part of PySpark: a cluster needs `hadoop-azure` (abfss) or `hadoop-aws` with
the AWS SDK bundle (s3a) on its classpath, in the version of its Hadoop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import LakeError
from conveyor.lake.credentials import optional_secret
from conveyor.lake.location import LakeLocation, parse_lake_url

if TYPE_CHECKING:
    from conveyor.config import Environment
    from conveyor.secrets.base import SecretStore

ABFS_HOST = "dfs.core.windows.net"
ABFS_OAUTH_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
S3A_SESSION_PROVIDER = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
TOKEN_ENDPOINT = "https://login.microsoftonline.com/{tenant}/oauth2/token"
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


def abfs_host(location: LakeLocation, secrets: SecretStore | None) -> str:
    """`ACCOUNT.dfs.core.windows.net` (or the host the URL names) of an Azure lake."""
    host = location.url.split("://", 1)[1].split("/", 1)[0].partition("@")[2]
    if host:
        return host
    account = location.account or optional_secret(secrets, "storage-account-name", sensitive=False)
    if not account:
        raise LakeError(
            f"the lake URL {location.url} names no storage account",
            hint="Use abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, or set the secret `storage-account-name`.",
        )
    return f"{account}.{ABFS_HOST}"


def _abfs(location: LakeLocation, secrets: SecretStore | None) -> dict[str, str]:
    host = abfs_host(location, secrets)
    client_id = optional_secret(secrets, "sp-app-id")
    client_secret = optional_secret(secrets, "sp-password")
    if client_id or client_secret:
        endpoint = optional_secret(secrets, "sp-token-endpoint", sensitive=False)
        tenant = optional_secret(secrets, "sp-tenant-id")
        if not endpoint and tenant:
            endpoint = TOKEN_ENDPOINT.format(tenant=tenant)
        missing = [name for name, value in (("sp-app-id", client_id), ("sp-password", client_secret)) if not value]
        if not endpoint:
            missing.append("sp-token-endpoint (or sp-tenant-id)")
        if missing:
            raise LakeError(
                f"Spark cannot read the lake {location.url}: its service principal lacks {', '.join(missing)}",
                hint="Set them with `conveyor secrets set KEY --env ENV` (the lab's secret scope holds all of them).",
            )
        assert client_id and client_secret and endpoint
        return {
            f"fs.azure.account.auth.type.{host}": "OAuth",
            f"fs.azure.account.oauth.provider.type.{host}": ABFS_OAUTH_PROVIDER,
            f"fs.azure.account.oauth2.client.id.{host}": client_id,
            f"fs.azure.account.oauth2.client.secret.{host}": client_secret,
            f"fs.azure.account.oauth2.client.endpoint.{host}": endpoint,
        }
    key = optional_secret(secrets, "storage-account-key")
    if key:
        return {f"fs.azure.account.auth.type.{host}": "SharedKey", f"fs.azure.account.key.{host}": key}
    return {}  # the cluster's own identity (e.g. a managed identity configured on it)


def _s3a(location: LakeLocation, secrets: SecretStore | None) -> dict[str, str]:
    bucket = location.root.split("/", 1)[0]
    prefix = f"fs.s3a.bucket.{bucket}."
    settings: dict[str, str] = {}
    key = optional_secret(secrets, "aws-access-key-id")
    secret = optional_secret(secrets, "aws-secret-access-key")
    if key and secret:
        settings[prefix + "access.key"] = key
        settings[prefix + "secret.key"] = secret
        token = optional_secret(secrets, "aws-session-token")
        if token:
            settings[prefix + "session.token"] = token
            settings[prefix + "aws.credentials.provider"] = S3A_SESSION_PROVIDER
    endpoint = optional_secret(secrets, "s3-endpoint-url", sensitive=False)
    if endpoint:
        settings[prefix + "endpoint"] = endpoint
        settings[prefix + "path.style.access"] = "true"
        settings[prefix + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    region = optional_secret(secrets, "aws-region", sensitive=False)
    if region:
        settings[prefix + "endpoint.region"] = region
    return settings
