"""A lake's credentials, read from the environment's secrets by one set of rules, for every reader of the lake:
fsspec's storage options here (`storage_options`), Spark's Hadoop settings in `conveyor.compute.hadoop`.

Azure, as the lab mounts ADLS: a service principal (`sp-app-id`, `sp-password`, and `sp-tenant-id` or the token
endpoint `sp-token-endpoint`; part of one is refused, naming what is missing), else `storage-account-key`;
`storage-connection-string` (how the Azurite emulator is reached) comes before both for fsspec, which alone
speaks it; `storage-account-name` names the account for `az://` URLs that do not. S3: `aws-access-key-id` with
`aws-secret-access-key` (and `aws-session-token`), `aws-region` and `s3-endpoint-url` (an S3-compatible server).
A secret that is absent is left to the library's default credential chain. Every value but the account's name,
the endpoint URLs and the region is registered for redaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.errors import LakeError, SecretError
from conveyor.secrets.redaction import register_secret

if TYPE_CHECKING:
    from conveyor.lake.location import LakeLocation
    from conveyor.secrets.base import SecretStore

AZURE_KEYS = (
    "sp-app-id",
    "sp-password",
    "sp-tenant-id",
    "sp-token-endpoint",
    "storage-account-name",
    "storage-account-key",
    "storage-connection-string",
)
S3_KEYS = ("aws-access-key-id", "aws-secret-access-key", "aws-session-token", "aws-region", "s3-endpoint-url")
CREDENTIAL_KEYS = (*AZURE_KEYS, *S3_KEYS)  # every key a lake's credentials may be read from
TOKEN_ENDPOINT = "https://login.microsoftonline.com/{tenant}/oauth2/token"  # noqa: S105 -- Azure AD's public token URL, not a token


def credential_keys(kind: str) -> tuple[str, ...]:
    """The keys a lake of backend `kind` (`file`, `azure`, `s3`) may read its credentials from."""
    return {"azure": AZURE_KEYS, "s3": S3_KEYS}.get(kind, ())


def optional_secret(secrets: SecretStore | None, key: str, *, sensitive: bool = True) -> str | None:
    """The secret `key`, or None when there is no store or the store does not hold it.

    A sensitive value is registered for redaction (again: the store does so too).
    """
    if secrets is None:
        return None
    try:
        value = secrets.get(key)
    except SecretError:
        return None
    if sensitive:
        register_secret(value)
    return value


@dataclass(frozen=True)
class ServicePrincipal:
    """An Azure service principal, complete: its client id and secret, and a tenant or token endpoint."""

    client_id: str
    client_secret: str
    tenant_id: str | None
    endpoint: str | None  # `sp-token-endpoint` as given

    @property
    def token_endpoint(self) -> str:
        """The OAuth token endpoint: the one given, else the tenant's."""
        return self.endpoint or TOKEN_ENDPOINT.format(tenant=self.tenant_id)


class AzureCredentials:
    """What the secrets hold for an Azure lake, each read when first asked for (a reader asks only for what it
    uses, in this order: the connection string if it speaks it, then `principal`, then `account_key`)."""

    def __init__(self, location: LakeLocation, secrets: SecretStore | None) -> None:
        self.location = location
        self._secrets = secrets

    @cached_property
    def account(self) -> str | None:
        """The URL's account, else `storage-account-name`."""
        return self.location.account or optional_secret(self._secrets, "storage-account-name", sensitive=False)

    @cached_property
    def connection_string(self) -> str | None:
        return optional_secret(self._secrets, "storage-connection-string")

    @cached_property
    def principal(self) -> ServicePrincipal | None:
        """The service principal, None when no part of one is set; part of one is a `LakeError` naming what is
        missing."""
        secrets = self._secrets
        client_id = optional_secret(secrets, "sp-app-id")
        client_secret = optional_secret(secrets, "sp-password")
        tenant = optional_secret(secrets, "sp-tenant-id")
        endpoint = optional_secret(secrets, "sp-token-endpoint", sensitive=False)
        if not (client_id or client_secret or tenant or endpoint):
            return None
        missing = [name for name, value in (("sp-app-id", client_id), ("sp-password", client_secret)) if not value]
        if not tenant and not endpoint:
            missing.append("sp-tenant-id (or sp-token-endpoint)")
        if missing or not client_id or not client_secret:
            raise LakeError(
                f"the lake {self.location.url} has a partial service principal: {', '.join(missing)} missing",
                hint="Set the missing secrets with `conveyor secrets set KEY --env ENV`.",
            )
        return ServicePrincipal(client_id, client_secret, tenant, endpoint)

    @cached_property
    def account_key(self) -> str | None:
        return optional_secret(self._secrets, "storage-account-key")


@dataclass(frozen=True)
class S3Credentials:
    """What the secrets hold for an S3 lake; the key pair only when both halves are there."""

    key: str | None
    secret: str | None
    token: str | None
    endpoint_url: str | None
    region: str | None


def s3_credentials(secrets: SecretStore | None) -> S3Credentials:
    """The S3 lake's credentials (a key without its secret, or a secret without its key, is not used)."""
    key = optional_secret(secrets, "aws-access-key-id")
    secret = optional_secret(secrets, "aws-secret-access-key")
    paired = bool(key and secret)
    return S3Credentials(
        key=key if paired else None,
        secret=secret if paired else None,
        token=optional_secret(secrets, "aws-session-token") if paired else None,
        endpoint_url=optional_secret(secrets, "s3-endpoint-url", sensitive=False),
        region=optional_secret(secrets, "aws-region", sensitive=False),
    )


def storage_options(location: LakeLocation, secrets: SecretStore | None) -> dict[str, Any]:
    """Keyword arguments for the backend filesystem of `location` (they may hold credentials: never print)."""
    if location.kind == "azure":
        return _azure(location, AzureCredentials(location, secrets))
    if location.kind == "s3":
        return _s3(s3_credentials(secrets))
    return {}


def _azure(location: LakeLocation, credentials: AzureCredentials) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if credentials.account:
        options["account_name"] = credentials.account
    if credentials.connection_string:
        return options | {"connection_string": credentials.connection_string}
    if "account_name" not in options:
        raise LakeError(
            f"the lake URL {location.url} names no storage account",
            hint="Use abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, or set the secret "
            "`storage-account-name` (or `storage-connection-string`).",
        )
    principal = credentials.principal
    if principal is not None:
        if not principal.tenant_id:
            raise LakeError(
                f"the lake {location.url} is read with its service principal's tenant, and sp-tenant-id is missing",
                hint="Set it with `conveyor secrets set sp-tenant-id --env ENV` (sp-token-endpoint serves Spark only).",
            )
        principal_options = {"client_id": principal.client_id, "client_secret": principal.client_secret}
        return options | principal_options | {"tenant_id": principal.tenant_id}
    if credentials.account_key:
        options["account_key"] = credentials.account_key
    return options


def _s3(credentials: S3Credentials) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if credentials.key and credentials.secret:
        options["key"] = credentials.key
        options["secret"] = credentials.secret
        if credentials.token:
            options["token"] = credentials.token
    if credentials.endpoint_url:
        options["endpoint_url"] = credentials.endpoint_url
    if credentials.region:
        options["client_kwargs"] = {"region_name": credentials.region}
    return options
