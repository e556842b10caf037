"""`databricks://[PROFILE@]SCOPE`: secrets in a Databricks secret scope, read through databricks-sdk.

The workspace and token come from `DATABRICKS_HOST`/`DATABRICKS_TOKEN`, or from PROFILE in
`~/.databrickscfg` (`DATABRICKS_CONFIG_FILE` elsewhere), or any other way the SDK's unified authentication
knows. `?timeout=SECONDS` bounds how long the SDK retries an unreachable or busy workspace (default 10).
"""

from __future__ import annotations

import base64
import binascii
import re
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from databricks.sdk.errors.base import DatabricksError

from conveyor.errors import SecretError
from conveyor.secrets.base import KeyedStore, missing_secret
from conveyor.secrets.redaction import redact, register_secret

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
PROFILE = re.compile(r"^[A-Za-z0-9_.\-]+$")
URL_FORM = "databricks://SCOPE or databricks://PROFILE@SCOPE"
DEFAULT_TIMEOUT = 10  # seconds, all told: a workspace that does not answer is an error within it, not silence
LOGIN_HINT = (
    "Set DATABRICKS_HOST and DATABRICKS_TOKEN, or name a profile of ~/.databrickscfg in the URL "
    "(databricks://PROFILE@SCOPE; create one with `databricks auth login --profile PROFILE`)."
)


def parse_databricks_url(url: str) -> tuple[str | None, str, int]:
    """`databricks://prod@conveyor-prod?timeout=30` → (`prod`, `conveyor-prod`, 30)."""
    rest = url.split("://", 1)[1]
    rest, _, query_text = rest.partition("?")
    rest = rest.rstrip("/")
    profile, at, scope = rest.rpartition("@")
    if not NAME.match(scope) or (at and not PROFILE.match(profile)):
        raise SecretError(
            f"Databricks secret store URL {url!r} does not name a secret scope",
            hint=f"Use {URL_FORM}; scope names hold letters, digits, '-', '_' and '.' (at most 128).",
        )
    query = {k: v[-1] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
    unknown = sorted(set(query) - {"timeout"})
    if unknown:
        raise SecretError(f"Databricks URL {url!r} has unknown options: {', '.join(unknown)}", hint="Accepted: timeout")
    timeout_text = query.get("timeout", str(DEFAULT_TIMEOUT))
    if not timeout_text.isdigit() or int(timeout_text) < 1:
        raise SecretError(f"Databricks URL {url!r}: timeout must be a whole number of seconds, not {timeout_text!r}")
    return (profile or None), scope, int(timeout_text)


def check_key(key: str) -> str:
    """A Databricks secret key: letters, digits, `-`, `_`, `.`, at most 128 characters."""
    if not NAME.match(key):
        raise SecretError(
            f"secret key {key!r} cannot be stored in a Databricks secret scope",
            hint="Databricks secret keys hold only letters, digits, '-', '_' and '.' (at most 128 characters).",
        )
    return key


class DatabricksSecretStore(KeyedStore):
    """The secrets of one Databricks secret scope."""

    def __init__(self, scope: str, url: str | None = None, *, profile: str | None = None, **config: Any) -> None:
        """`config` goes to the SDK's `Config` (e.g. `host=`, `token=`, `retry_timeout_seconds=`)."""
        self.scope = scope
        self.profile = profile
        self.url = url or (f"databricks://{profile}@{scope}" if profile else f"databricks://{scope}")
        self._config = config

    @classmethod
    def from_url(cls, url: str, project_root: Path) -> DatabricksSecretStore:
        profile, scope, timeout = parse_databricks_url(url)
        # On a silent host the SDK waits twice (the host-metadata probe, then the call), each time up to its retry
        # budget plus one last attempt's timeout: a quarter of the timeout for each of those four.
        quarter = max(1, timeout // 4)
        return cls(scope, url, profile=profile, retry_timeout_seconds=quarter, http_timeout_seconds=quarter)

    @cached_property
    def client(self) -> WorkspaceClient:
        options = dict(self._config)
        if self.profile:
            options["profile"] = self.profile
        try:
            config = Config(**options)
        except ValueError as exc:  # the SDK's "cannot configure default credentials" and bad profiles
            raise SecretError(
                f"cannot connect store {self.url} to a Databricks workspace: {redact(_first_sentence(exc))}",
                hint=LOGIN_HINT,
            ) from None
        if config.token:
            register_secret(config.token, "the Databricks token")
        return WorkspaceClient(config=config)

    @contextmanager
    def _errors(self, doing: str, key: str | None = None) -> Iterator[None]:
        """Turn databricks-sdk errors into `SecretError`s that say what was being done and what to do."""
        try:
            yield
        except NotFound as exc:
            if key is not None and not str(exc).strip().lower().startswith("scope"):
                raise missing_secret(key, self.url) from None
            raise SecretError(
                f"cannot {doing}: secret scope {self.scope!r} does not exist (store {self.url}): {redact(str(exc))}",
                hint=f"Create it with: databricks secrets create-scope {self.scope}",
            ) from None
        except (PermissionDenied, Unauthenticated) as exc:
            raise SecretError(
                f"cannot {doing}: Databricks denied access to scope {self.scope!r} (store {self.url}): "
                f"{redact(str(exc))}",
                hint=(
                    "Check the token (DATABRICKS_TOKEN or the profile's token) and ask a scope manager for READ "
                    f"(WRITE to set): databricks secrets put-acl {self.scope} <principal> READ. " + LOGIN_HINT
                ),
            ) from None
        except BadRequest as exc:
            raise SecretError(
                f"cannot {doing}: Databricks refused the request for scope {self.scope!r}: {redact(str(exc))}",
                hint="Azure Key Vault-backed scopes are read-only through this API; set secrets in the vault.",
            ) from None
        except DatabricksError as exc:
            raise SecretError(
                f"cannot {doing}: Databricks answered an error for store {self.url}: {redact(str(exc))}",
                hint="Retry later; if it persists, check the workspace's status.",
            ) from None
        except (TimeoutError, OSError) as exc:
            raise SecretError(
                f"cannot {doing}: cannot reach the Databricks workspace of store {self.url} "
                f"({type(exc).__name__}: {redact(str(exc))})",
                hint="Check DATABRICKS_HOST (or the profile's host) and your network, then retry.",
            ) from None

    def get(self, key: str) -> str:
        check_key(key)
        with self._errors(f"read secret {key!r}", key):
            response = self.client.secrets.get_secret(self.scope, key)
        try:
            value = base64.b64decode(response.value or "", validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(
                f"secret {key!r} in store {self.url} is not UTF-8 text",
                hint="Store text secrets with `databricks secrets put-secret --string-value`.",
            ) from None
        return self.admit(key, value)

    def names(self) -> list[str]:
        with self._errors("list secrets"):
            return sorted(item.key for item in self.client.secrets.list_secrets(self.scope) if item.key)

    def set(self, key: str, value: str) -> None:
        check_key(key)
        self.admit(key, value)
        with self._errors(f"set secret {key!r}"):
            self.client.secrets.put_secret(self.scope, key, string_value=value)


def _first_sentence(exc: Exception) -> str:
    text = str(exc).strip()
    return text.split(". ", 1)[0] if text else type(exc).__name__
