"""`azure-keyvault://VAULTNAME`: secrets in an Azure Key Vault, read through azure-keyvault-secrets.

`VAULTNAME` becomes `https://VAULTNAME.vault.azure.net`; a full host name (`name.vault.azure.cn`) is taken
as it is, for the sovereign clouds. Credentials: a service principal when `AZURE_CLIENT_ID`,
`AZURE_CLIENT_SECRET` and `AZURE_TENANT_ID` are all set, otherwise `DefaultAzureCredential` (managed identity,
workload identity, `az login`, ...).

Key Vault secret names hold only letters, digits and dashes: a conveyor key's `_` and `.` are stored as `-`,
and any other character is refused.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient

from conveyor.errors import SecretError, SecretMissing
from conveyor.secrets.base import KeyedStore, missing_secret
from conveyor.secrets.redaction import redact, register_secret

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from azure.core.credentials import TokenCredential

VAULT_NAME = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
VAULT_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
SERVICE_PRINCIPAL_VARS = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")
LOGIN_HINT = (
    "Run `az login`, or set AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID for a service principal "
    "(on Azure, a managed identity works without either)."
)


def vault_url_from(url: str) -> str:
    """`azure-keyvault://conveyor-dev` → `https://conveyor-dev.vault.azure.net`."""
    name = url.split("://", 1)[1].strip("/")
    if VAULT_NAME.match(name):
        return f"https://{name.lower()}.vault.azure.net"
    if "." in name and VAULT_HOST.match(name):
        return f"https://{name.lower()}"
    raise SecretError(
        f"Azure Key Vault URL {url!r} does not name a vault",
        hint=(
            "Use azure-keyvault://VAULTNAME: 3-24 letters, digits and dashes, starting with a letter, not ending "
            "with a dash, no double dashes (or the vault's full host name, e.g. NAME.vault.azure.cn)."
        ),
    )


def secret_name(key: str) -> str:
    """The Key Vault name of a conveyor key: `sp_app.id` → `sp-app-id`; names Key Vault cannot hold are refused."""
    name = key.replace("_", "-").replace(".", "-")
    if not SECRET_NAME.match(name):
        raise SecretError(
            f"secret key {key!r} cannot be stored in Azure Key Vault: names hold only letters, digits and "
            "dashes (1-127 characters)",
            hint="Rename the key to letters, digits and dashes, e.g. `datalake-fqdn`.",
        )
    return name


def credential_from_environment(**options: Any) -> TokenCredential:
    """A service principal credential when its three variables are set, else `DefaultAzureCredential`."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    if all(os.environ.get(var) for var in SERVICE_PRINCIPAL_VARS):
        register_secret(os.environ["AZURE_CLIENT_SECRET"], "AZURE_CLIENT_SECRET")
        return ClientSecretCredential(
            tenant_id=os.environ["AZURE_TENANT_ID"],
            client_id=os.environ["AZURE_CLIENT_ID"],
            client_secret=os.environ["AZURE_CLIENT_SECRET"],
            **options,
        )
    return DefaultAzureCredential(**options)


class AzureKeyVaultSecretStore(KeyedStore):
    """Secrets of one Azure Key Vault, one Key Vault secret per conveyor key."""

    def __init__(
        self,
        vault_url: str,
        url: str | None = None,
        *,
        credential: TokenCredential | None = None,
        **client_options: Any,
    ) -> None:
        """`client_options` go to `SecretClient` and the credential (e.g. `transport=`, `retry_total=`)."""
        self.vault_url = vault_url
        self.url = url or f"azure-keyvault://{vault_url.removeprefix('https://')}"
        self._credential = credential
        self._client_options = client_options

    @classmethod
    def from_url(cls, url: str, project_root: Path, **client_options: Any) -> AzureKeyVaultSecretStore:
        return cls(vault_url_from(url), url, **client_options)

    @cached_property
    def client(self) -> SecretClient:
        transport = {k: v for k, v in self._client_options.items() if k == "transport"}
        credential = self._credential or credential_from_environment(**transport)
        return SecretClient(vault_url=self.vault_url, credential=credential, **self._client_options)

    @contextmanager
    def _errors(self, doing: str, key: str | None = None) -> Iterator[None]:
        """Turn Azure SDK errors into `SecretError`s that say what was being done and what to do."""
        try:
            yield
        except ResourceNotFoundError:
            if key is None:
                raise SecretError(
                    f"cannot {doing}: vault {self.vault_url} was not found (store {self.url})",
                    hint="Check the vault name in the store URL.",
                ) from None
            raise missing_secret(key, self.url) from None
        except ClientAuthenticationError as exc:
            raise SecretError(
                f"cannot {doing}: no valid Azure credential for store {self.url} ({redact(_first_line(exc.message))})",
                hint=LOGIN_HINT,
            ) from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise SecretError(
                    f"cannot {doing}: Azure Key Vault denied access to {self.vault_url} "
                    f"({redact(_first_line(exc.message))})",
                    hint=(
                        "Grant the signed-in identity the 'Key Vault Secrets User' role (or a secret access "
                        "policy; 'Key Vault Secrets Officer' to set), or check the vault's firewall."
                    ),
                ) from None
            raise SecretError(
                f"cannot {doing}: Azure Key Vault answered {exc.status_code} for store {self.url} "
                f"({redact(_first_line(exc.message))})",
                hint="Retry later; if it persists, check the vault in the Azure portal.",
            ) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise SecretError(
                f"cannot {doing}: cannot reach {self.vault_url} ({type(exc).__name__})",
                hint="Check the vault name, your network/VPN and the vault's firewall, then retry.",
            ) from None

    def get(self, key: str) -> str:
        name = secret_name(key)
        with self._errors(f"read secret {key!r}", key):
            secret = self.client.get_secret(name)
        if secret.value is None:
            raise SecretMissing(f"secret {key!r} in store {self.url} has no value", key=key)
        return self.admit(key, secret.value)

    def names(self) -> list[str]:
        """The vault's secret names, without the ones Key Vault manages for certificates."""
        with self._errors("list secrets"):
            return sorted(
                properties.name
                for properties in self.client.list_properties_of_secrets()
                if properties.name and not properties.managed
            )

    def set(self, key: str, value: str) -> None:
        name = secret_name(key)
        self.admit(key, value)
        with self._errors(f"set secret {key!r}"):
            self.client.set_secret(name, value)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "no detail"
