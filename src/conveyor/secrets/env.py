"""`env://PREFIX`: secrets from environment variables, `datalake-fqdn` read from `PREFIXDATALAKE_FQDN`.

A variable that is set but empty counts as absent: CI systems hand out a secret that was never set as "".
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from conveyor.errors import SecretError
from conveyor.secrets.base import KeyedStore

if TYPE_CHECKING:
    from pathlib import Path

PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^$")


def variable_name(prefix: str, key: str) -> str:
    """`CONVEYOR_DEV_` + `sp-app-id` → `CONVEYOR_DEV_SP_APP_ID`."""
    return prefix + key.upper().replace("-", "_").replace(".", "_")


class EnvSecretStore(KeyedStore):
    """Secrets in the process environment, as CI systems hand them out."""

    def __init__(self, prefix: str, url: str | None = None) -> None:
        self.prefix = prefix
        self.url = url or f"env://{prefix}"
        # Without a prefix every variable (PATH, HOME...) would be listed: a scan then knows only the values read.
        self.lists_only_secrets = bool(prefix)

    @classmethod
    def from_url(cls, url: str, project_root: Path) -> EnvSecretStore:
        prefix = url.split("://", 1)[1]
        if not PREFIX.match(prefix):
            raise SecretError(
                f"env:// secret store URL {url!r} has a bad variable prefix {prefix!r}",
                hint="Use env://PREFIX with letters, digits and underscores, e.g. env://CONVEYOR_DEV_",
            )
        return cls(prefix, url)

    def get(self, key: str) -> str:
        name = variable_name(self.prefix, key)
        value = os.environ.get(name)
        if not value:
            raise SecretError(
                f"secret {key!r} is missing from store {self.url} (environment variable {name} is not set or empty)",
                hint=f"Export {name} in the environment that runs conveyor.",
            )
        return self.admit(key, value)

    @staticmethod
    def _key(suffix: str) -> str:
        return suffix.lower().replace("_", "-")

    def _variables(self) -> list[str]:
        """The keys whose variables carry the prefix, spelled as `variable_name` spells them back."""
        found = [name for name, value in os.environ.items() if name.startswith(self.prefix) and value]
        return [name[len(self.prefix) :] for name in found]

    def names(self) -> list[str]:
        return sorted(self._key(suffix) for suffix in self._variables())

    def set(self, key: str, value: str) -> None:
        raise SecretError(
            f"store {self.url} is read-only: conveyor cannot set environment variables for later processes",
            hint=f"Export {variable_name(self.prefix, key)} yourself, e.g. in your CI's secret variables.",
        )
