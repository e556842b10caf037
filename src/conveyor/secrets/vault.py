"""`vault://HOST[:PORT]/MOUNT/PATH`: secrets in one HashiCorp Vault KV secret, read through hvac.

The secrets of an environment are the keys of the KV secret at PATH on the KV engine mounted at MOUNT.
KV version 2 is the default; `?kv=1` selects version 1. `?tls=0` talks plain HTTP (a local dev server).
The token comes from `VAULT_TOKEN` or `~/.vault-token` (what `vault login` writes); `VAULT_NAMESPACE`,
`VAULT_CACERT` and `VAULT_CAPATH` are honoured as the vault CLI does.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import hvac
import hvac.exceptions
import requests

from conveyor.errors import SecretError
from conveyor.secrets.base import KeyedStore, missing_secret
from conveyor.secrets.redaction import redact, register_secret

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_PORT = 8200
URL_FORM = "vault://HOST[:PORT]/MOUNT/PATH[?kv=1|2][&tls=0|1]"


@dataclass(frozen=True)
class VaultLocation:
    """Where a conveyor environment's secrets live in Vault."""

    address: str  # https://host:8200
    mount: str
    path: str
    kv_version: int


def parse_vault_url(url: str) -> VaultLocation:
    """`vault://vault.example.com/secret/conveyor/dev?kv=2` → its address, mount, path and KV version."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise SecretError(f"vault URL {url!r} names no host", hint=f"Use the form {URL_FORM}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise SecretError(f"vault URL {url!r} has a bad port", hint=f"Use the form {URL_FORM}") from None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise SecretError(
            f"vault URL {url!r} must name a KV mount and a secret path",
            hint=f"Use the form {URL_FORM}, e.g. vault://vault.example.com/secret/conveyor/dev",
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - {"kv", "tls"})
    if unknown:
        raise SecretError(
            f"vault URL {url!r} has unknown options: {', '.join(unknown)}", hint="Accepted options: kv, tls"
        )
    kv = query.get("kv", "2")
    if kv not in {"1", "2"}:
        raise SecretError(f"vault URL {url!r}: kv must be 1 or 2, not {kv!r}")
    tls = query.get("tls", "1")
    if tls not in {"0", "1"}:
        raise SecretError(f"vault URL {url!r}: tls must be 0 or 1, not {tls!r}")
    scheme = "https" if tls == "1" else "http"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return VaultLocation(f"{scheme}://{host}:{port}", segments[0], "/".join(segments[1:]), int(kv))


def vault_token() -> str | None:
    """The token the vault CLI would use: `VAULT_TOKEN`, else the contents of `~/.vault-token`."""
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if token:
        return token
    token_file = Path("~/.vault-token").expanduser()
    if token_file.is_file():
        return token_file.read_text().strip() or None
    return None


class VaultSecretStore(KeyedStore):
    """The keys of one Vault KV secret, one key per conveyor secret."""

    def __init__(self, location: VaultLocation, url: str, *, timeout: float = 30) -> None:
        self.location = location
        self.url = url
        self.timeout = timeout

    @classmethod
    def from_url(cls, url: str, project_root: Path) -> VaultSecretStore:
        return cls(parse_vault_url(url), url)

    @cached_property
    def client(self) -> hvac.Client:
        token = vault_token()
        if token is None:
            raise SecretError(
                f"no Vault token for store {self.url}",
                hint="Set VAULT_TOKEN, or run `vault login` (it writes ~/.vault-token).",
            )
        register_secret(token, "the Vault token")
        return hvac.Client(
            url=self.location.address,
            token=token,
            namespace=os.environ.get("VAULT_NAMESPACE") or None,
            timeout=self.timeout,
        )

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn hvac and connection errors into `SecretError`s that say what was being done and what to do."""
        where = f"Vault secret {self.location.mount}/{self.location.path} (store {self.url})"
        try:
            yield
        except hvac.exceptions.InvalidPath:
            raise SecretError(
                f"cannot {doing}: {where} does not exist",
                hint=(
                    f"Create it with `conveyor secrets set KEY --env ENV`, or check the mount and path "
                    f"(KV version {self.location.kv_version}; add ?kv=1 to the URL for a KV v1 engine)."
                ),
            ) from None
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise SecretError(
                f"cannot {doing}: Vault denied access to {where}",
                hint=(
                    "The token is invalid, expired or lacks a policy for this path: run `vault login` or set "
                    "VAULT_TOKEN (and VAULT_NAMESPACE on Vault Enterprise/HCP)."
                ),
            ) from None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized):
            raise SecretError(
                f"cannot {doing}: Vault at {self.location.address} is sealed or not initialized",
                hint="Ask the Vault operators to unseal it, then retry.",
            ) from None
        except hvac.exceptions.InvalidRequest as exc:
            raise SecretError(
                f"cannot {doing}: Vault refused the request for {where}: {redact('; '.join(exc.errors or []))}",
                hint="If another writer changed the secret meanwhile, retry.",
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise SecretError(
                f"cannot {doing}: Vault answered an error for {where}: {redact(str(exc))}",
                hint="Retry later, or check the Vault server's health (`vault status`).",
            ) from None
        except requests.exceptions.SSLError:
            raise SecretError(
                f"cannot {doing}: TLS verification of {self.location.address} failed (store {self.url})",
                hint="Point VAULT_CACERT at the server's CA certificate, or add ?tls=0 for a plain-HTTP dev server.",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SecretError(
                f"cannot {doing}: cannot reach Vault at {self.location.address} ({type(exc).__name__})",
                hint="Check the host and port in the store URL and your network/VPN, then retry.",
            ) from None

    def _read(self, doing: str, *, missing_ok: bool = False) -> tuple[dict[str, str], int | None]:
        """The secret's key/value data and, on KV v2, its version; `({}, 0)` when `missing_ok` and absent."""
        kv = self.client.secrets.kv
        with self._errors(doing):
            try:
                if self.location.kv_version == 2:
                    response = kv.v2.read_secret_version(
                        path=self.location.path, mount_point=self.location.mount, raise_on_deleted_version=True
                    )
                    data = response["data"]["data"] or {}
                    version = response["data"]["metadata"]["version"]
                else:
                    response = kv.v1.read_secret(path=self.location.path, mount_point=self.location.mount)
                    data = response["data"] or {}
                    version = None
            except hvac.exceptions.InvalidPath:
                if not missing_ok:
                    raise
                return {}, 0
        return {key: value if isinstance(value, str) else str(value) for key, value in data.items()}, version

    def get(self, key: str) -> str:
        values, _ = self._read(f"read secret {key!r}")
        if key not in values:
            raise missing_secret(key, self.url)
        return self.admit(key, values[key])

    def names(self) -> list[str]:
        values, _ = self._read("list secrets")
        return sorted(values)

    def set(self, key: str, value: str) -> None:
        """Add or replace one key, keeping the others; on KV v2 a check-and-set write guards against races."""
        self.admit(key, value)
        doing = f"set secret {key!r}"
        values, version = self._read(doing, missing_ok=True)
        values[key] = value
        kv = self.client.secrets.kv
        with self._errors(doing):
            if self.location.kv_version == 2:
                kv.v2.create_or_update_secret(
                    path=self.location.path, secret=values, cas=version, mount_point=self.location.mount
                )
            else:
                # KV v1 treats POST and PUT alike; naming it spares hvac a read to choose between them.
                kv.v1.create_or_update_secret(
                    path=self.location.path, secret=values, method="POST", mount_point=self.location.mount
                )
