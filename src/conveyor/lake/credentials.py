"""Storage options for a lake's backend, taken from the environment's secrets.

Azure, as the lab mounts ADLS: `sp-app-id`, `sp-password`, `sp-tenant-id` (a service principal), or
`storage-account-key`, or `storage-connection-string` (how the Azurite emulator is reached); `storage-account-name`
names the account for `az://` URLs that do not. S3: `aws-access-key-id`, `aws-secret-access-key`, optional
`aws-session-token`, `aws-region` and `s3-endpoint-url` (an S3-compatible server). A secret that is absent is
left to the library's default credential chain.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import LakeError, SecretError
from conveyor.lake.location import LakeLocation
from conveyor.secrets.base import SecretStore
from conveyor.secrets.redaction import register_secret

SERVICE_PRINCIPAL = {"sp-app-id": "client_id", "sp-password": "client_secret", "sp-tenant-id": "tenant_id"}
CREDENTIAL_KEYS = (
    *SERVICE_PRINCIPAL,
    "storage-account-name",
    "storage-account-key",
    "storage-connection-string",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
    "aws-region",
    "s3-endpoint-url",
)  # every key a lake's credentials may be read from


AZURE_KEYS = (*SERVICE_PRINCIPAL, "storage-account-name", "storage-account-key", "storage-connection-string")
S3_KEYS = ("aws-access-key-id", "aws-secret-access-key", "aws-session-token", "aws-region", "s3-endpoint-url")


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


def storage_options(location: LakeLocation, secrets: SecretStore | None) -> dict[str, Any]:
    """Keyword arguments for the backend filesystem of `location` (they may hold credentials: never print)."""
    if location.kind == "azure":
        return _azure(location, secrets)
    if location.kind == "s3":
        return _s3(secrets)
    return {}


def _azure(location: LakeLocation, secrets: SecretStore | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    account = location.account or optional_secret(secrets, "storage-account-name", sensitive=False)
    if account:
        options["account_name"] = account
    connection_string = optional_secret(secrets, "storage-connection-string")
    if connection_string:
        options["connection_string"] = connection_string
        return options
    key = optional_secret(secrets, "storage-account-key")
    if key:
        options["account_key"] = key
    else:
        principal = {arg: optional_secret(secrets, name) for name, arg in SERVICE_PRINCIPAL.items()}
        present = [name for name, arg in SERVICE_PRINCIPAL.items() if principal[arg]]
        if present and len(present) < len(SERVICE_PRINCIPAL):
            missing = sorted(set(SERVICE_PRINCIPAL) - set(present))
            raise LakeError(
                f"the lake {location.url} has a partial service principal: {', '.join(missing)} missing",
                hint="Set the missing secrets with `conveyor secrets set KEY --env ENV`.",
            )
        if present:
            options.update(principal)
    if "account_name" not in options:
        raise LakeError(
            f"the lake URL {location.url} names no storage account",
            hint="Use abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, or set the secret "
            "`storage-account-name` (or `storage-connection-string`).",
        )
    return options


def _s3(secrets: SecretStore | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    key = optional_secret(secrets, "aws-access-key-id")
    secret = optional_secret(secrets, "aws-secret-access-key")
    if key and secret:
        options["key"] = key
        options["secret"] = secret
        token = optional_secret(secrets, "aws-session-token")
        if token:
            options["token"] = token
    client_kwargs: dict[str, str] = {}
    endpoint = optional_secret(secrets, "s3-endpoint-url", sensitive=False)
    if endpoint:
        options["endpoint_url"] = endpoint
    region = optional_secret(secrets, "aws-region", sensitive=False)
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options
