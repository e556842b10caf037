"""The `SecretStore` protocol and the scheme → backend table.

Every backend admits each value it hands out through `KeyedStore.admit`: the value is registered with the
redactor, so it is masked wherever conveyor prints, logs or writes afterwards, or refused (`WeakSecretError`,
naming the key) when it is too short or too common to mask safely. Keys whose values are published by design
(`state`, `created_by`) are declared with `public_keys` and pass unmasked. Reading a whole store (for masking a
child's output, for a publishing scan) therefore refuses a store holding any weak value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from conveyor.errors import SecretError, SecretMissing
from conveyor.plugins import Entry, Table
from conveyor.secrets.redaction import declare_public, register_secret

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class SecretBackend(Entry):
    """One kind of secret store, by URL scheme. `implementation` names a factory taking (url, project_root) and
    returning a `KeyedStore`; `extra` is the `conveyor[EXTRA]` its client library comes with; `cluster` says a
    remote cluster (a Databricks job run) can read the store too."""

    form: str
    extra: str | None = None
    cluster: bool = False


BACKENDS: Table[SecretBackend] = Table(
    SecretBackend,
    (
        SecretBackend(
            "file", "conveyor.secrets.file:FileSecretStore.from_url", "a TOML file on this machine", form="file://PATH"
        ),
        SecretBackend(
            "env",
            "conveyor.secrets.env:EnvSecretStore.from_url",
            "this process's environment variables",
            form="env://PREFIX",
        ),
        SecretBackend(
            "vault",
            "conveyor.secrets.vault:VaultSecretStore.from_url",
            "a HashiCorp Vault KV secret",
            form="vault://HOST/PATH",
            extra="vault",
            cluster=True,
        ),
        SecretBackend(
            "azure-keyvault",
            "conveyor.secrets.azure_keyvault:AzureKeyVaultSecretStore.from_url",
            "an Azure Key Vault",
            form="azure-keyvault://VAULT",
            extra="azure",
            cluster=True,
        ),
        SecretBackend(
            "databricks",
            "conveyor.secrets.databricks:DatabricksSecretStore.from_url",
            "a Databricks secret scope",
            form="databricks://SCOPE",
            extra="databricks",
            cluster=True,
        ),
    ),
    group="conveyor.secrets",
)


def cluster_stores() -> str:
    """The forms of the stores a remote cluster can read, for messages: `vault://HOST/PATH, ... or ...`."""
    forms = [backend.form for backend in BACKENDS.values() if backend.cluster]
    return ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else "".join(forms)


@runtime_checkable
class SecretStore(Protocol):
    """A named place secrets come from. `get` raises `SecretError` naming the key and the store, never a value."""

    url: str

    def get(self, key: str) -> str: ...

    def names(self) -> list[str]: ...

    def set(self, key: str, value: str) -> None: ...


class KeyedStore:
    """What every backend shares: the keys published by design, and admitting a value before handing it out."""

    url: str
    public_keys: frozenset[str] = frozenset()

    def admit(self, key: str, value: str) -> str:
        """Register `value` of `key` for masking (or declare it public); refuse a value too weak to mask."""
        if key in self.public_keys:
            declare_public(value)
        else:
            register_secret(value, key, store=self.url)
        return value


class OwnedStore:
    """A store whose missing-key errors say how to set the key for its owner (`--env dev`, `--env gates`)."""

    def __init__(self, store: SecretStore, owner: str) -> None:
        self.store = store
        self.owner = owner
        self.url = store.url

    def get(self, key: str) -> str:
        try:
            return self.store.get(key)
        except SecretMissing as missing:
            raise missing.owned_by(self.owner) from None

    def names(self) -> list[str]:
        return self.store.names()

    def set(self, key: str, value: str) -> None:
        self.store.set(key, value)

    def __getattr__(self, name: str) -> object:  # the backend's own attributes (a file store's path, ...)
        return getattr(self.store, name)


def missing_secret(key: str, url: str) -> SecretMissing:
    """The error for a key that store `url` does not hold: names both and says how to set it."""
    return SecretMissing(f"secret {key!r} is missing from store {url}", key=key)


def scheme_of(url: str) -> str:
    """The URL's scheme (`file`, `env`, `vault`, ...), or an error naming the URL when it has none."""
    if "://" not in url:
        raise SecretError(
            f"secret store URL {url!r} has no scheme",
            hint=f"Use one of: {', '.join(s + '://' for s in BACKENDS)}",
        )
    return url.split("://", 1)[0].lower()


def open_store(url: str, project_root: Path | None = None, *, public_keys: frozenset[str] = frozenset()) -> SecretStore:
    """Open the secret store named by `url`; relative `file://` paths are taken from `project_root`.

    `public_keys` name the keys whose values are published by design and so are not masked.
    """
    scheme = scheme_of(url)
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise SecretError(
            f"unknown secret store scheme {scheme + '://'!r} in {url!r}",
            hint=f"Accepted schemes: {', '.join(s + '://' for s in BACKENDS)}",
        )
    try:
        factory = backend.load()
    except ImportError as exc:  # an optional backend whose client library is not installed
        if (exc.name or "").startswith("conveyor"):
            raise
        raise SecretError(
            f"the {scheme}:// secret store needs a client library that is not installed ({exc.name})",
            hint=f"Install it with: pip install 'conveyor[{backend.extra or scheme}]'",
        ) from None
    store = cast("KeyedStore", cast("Callable[[str, Path], object]", factory)(url, project_root or Path.cwd()))
    store.public_keys = frozenset(public_keys)
    return cast("SecretStore", store)
