"""The environment's Databricks workspace: a databricks-sdk client with the credentials from its secret store,
files under its `upload_path` (a Unity Catalog volume or a workspace folder), and errors that say what to do."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConfigError
from conveyor.secrets.redaction import redact, register_secret

if TYPE_CHECKING:
    from collections.abc import Iterator

    from databricks.sdk import WorkspaceClient

    from conveyor.config import Environment
    from conveyor.config.schema import DatabricksConfig

EXPIRED_WORDS = ("token", "jwt", "expired", "credential", "unauthenticated", "unauthorized")


@dataclass
class Workspace:
    """One environment's workspace, reached with the identity its `[databricks]` section names."""

    environment: Environment
    section: DatabricksConfig
    host: str
    credentials: dict[str, str]

    @property
    def identity(self) -> str:
        """How the workspace is reached, for messages (never the credential itself)."""
        if "client_id" in self.credentials:
            kind = "Azure service principal" if "tenant_id" in self.credentials else "service principal"
            return f"the {kind} in environments.{self.environment.name}.databricks.client_id"
        return f"the token in environments.{self.environment.name}.databricks.token"

    @cached_property
    def client(self) -> WorkspaceClient:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        options: dict[str, Any] = {"host": self.host, "disable_experimental_files_api_client": True}
        creds = self.credentials
        if "token" in creds:
            options |= {"token": creds["token"], "auth_type": "pat"}
        elif "tenant_id" in creds:
            options |= {
                "azure_client_id": creds["client_id"],
                "azure_client_secret": creds["client_secret"],
                "azure_tenant_id": creds["tenant_id"],
                "auth_type": "azure-client-secret",
            }
        else:
            options |= {
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "auth_type": "oauth-m2m",
            }
        with self.errors("connect to the workspace"):
            try:
                config = Config(**options)
            except ValueError as exc:
                raise ConfigError(
                    f"cannot use the Databricks workspace {self.host} of environment "
                    f"{self.environment.name!r}: {redact(str(exc).split('. ')[0])}",
                    hint=self.credential_hint(),
                ) from None
        return WorkspaceClient(config=config)

    def credential_hint(self) -> str:
        env = self.environment.name
        keys = ", ".join(sorted(self.environment.required_secrets()))
        if "token" in self.credentials:
            return (
                "The token may have expired or been revoked. Create a new one (workspace: Settings → Developer → "
                f"Access tokens, or `databricks tokens create`) and store it: conveyor secrets set "
                f"{_secret_key(self.section.token) or 'databricks-token'} --env {env}"
            )
        return (
            f"Check the service principal's client secret (it may have expired) and that it may use the workspace; "  # noqa: S608 -- a hint's text, not SQL
            f"update it with `conveyor secrets set KEY --env {env}` (this environment reads: {keys})."
        )

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn databricks-sdk errors into conveyor's: refused credentials exit 2 with the fix."""
        from databricks.sdk.errors import NotFound, PermissionDenied, Unauthenticated
        from databricks.sdk.errors.base import DatabricksError

        try:
            yield
        except (Unauthenticated, PermissionDenied) as exc:
            message = sdk_message(exc)
            if isinstance(exc, Unauthenticated) or any(word in message.lower() for word in EXPIRED_WORDS):
                raise ConfigError(
                    f"cannot {doing}: the Databricks workspace {self.host} refused {self.identity}: {message}",
                    hint=self.credential_hint(),
                ) from None
            raise ConfigError(
                f"cannot {doing}: {self.identity} may not do this in {self.host}: {message}",
                hint="Ask a workspace admin for the permission (on the cluster, the volume or the folder).",
            ) from None
        except NotFound as exc:
            raise ConfigError(
                f"cannot {doing}: not found in the Databricks workspace {self.host}: {sdk_message(exc)}",
                hint=f"Check environments.{self.environment.name}.databricks (cluster_id, upload_path).",
            ) from None
        except DatabricksError as exc:
            raise CheckFailed(
                f"cannot {doing}: the Databricks workspace {self.host} answered: {sdk_message(exc)}",
                hint="Retry later; if it persists, check the workspace's status.",
            ) from None
        except ValueError as exc:  # the SDK's own refusals, e.g. OAuth endpoints it cannot use
            if "auth" not in str(exc).lower() and "token" not in str(exc).lower():
                raise
            raise ConfigError(
                f"cannot {doing}: {self.identity} cannot sign in to {self.host}: {sdk_message(exc)}",
                hint=self.credential_hint(),
            ) from None
        except OSError as exc:
            raise CheckFailed(
                f"cannot {doing}: cannot reach the Databricks workspace {self.host} ({type(exc).__name__})",
                hint=f"Check environments.{self.environment.name}.databricks.host and your network.",
            ) from None

    def sign_in(self) -> str:
        """Check the credentials with one cheap call; the name of the user or service principal."""
        with self.errors("sign in to the workspace"):
            me = self.client.current_user.me()
        return me.user_name or me.display_name or me.id or "?"

    # -- files under upload_path ---------------------------------------------------------------------------

    @property
    def on_volume(self) -> bool:
        return self.section.upload_path.startswith("/Volumes/")

    def path(self, *parts: str) -> str:
        return "/".join((self.section.upload_path, *parts))

    def exists(self, path: str) -> bool:
        from databricks.sdk.errors import NotFound

        with self.errors(f"look for {path}"):
            try:
                if self.on_volume:
                    self.client.files.get_metadata(path)
                else:
                    self.client.workspace.get_status(path)
            except NotFound:
                return False
        return True

    def upload(self, path: str, data: bytes) -> None:
        """Write `data` at `path` (a volume file through the Files API, else a workspace file)."""
        parent = path.rsplit("/", 1)[0]
        with self.errors(f"upload {path}"):
            if self.on_volume:
                self.client.files.create_directory(parent)
                self.client.files.upload(path, io.BytesIO(data), overwrite=True)
            else:
                from databricks.sdk.service.workspace import ImportFormat

                self.client.workspace.mkdirs(parent)
                self.client.workspace.upload(path, io.BytesIO(data), format=ImportFormat.AUTO, overwrite=True)

    def download(self, path: str) -> bytes:
        with self.errors(f"download {path}"):
            if self.on_volume:
                contents = self.client.files.download(path).contents
                if contents is None:
                    raise CheckFailed(
                        f"cannot download {path}: the Databricks workspace {self.host} sent no contents",
                        hint="Retry later; if it persists, check the workspace's status.",
                    )
                return bytes(contents.read())
            return bytes(self.client.workspace.download(path).read())


DATABRICKS_REGISTRIES = ("databricks", "databricks-uc")
OTHER_CREDENTIALS = (
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_CONFIG_PROFILE",
)


def uses_workspace_registry(environment: Environment) -> bool:
    """True when the environment registers its models in the workspace's own MLflow (`registry = "databricks"`)."""
    return environment.registry_uri.split(":", 1)[0].split("://", 1)[0] in DATABRICKS_REGISTRIES


@contextmanager
def mlflow_credentials(workspace: Workspace) -> Iterator[None]:
    """While inside, MLflow reaches the workspace's registry as the environment's identity: MLflow reads the
    workspace from DATABRICKS_HOST and the credential from DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID/SECRET or, for an
    Azure service principal, ARM_CLIENT_ID/SECRET/TENANT_ID. The previous values come back on leaving."""
    creds = workspace.credentials
    values = {"DATABRICKS_HOST": workspace.host}
    if "token" in creds:
        values["DATABRICKS_TOKEN"] = creds["token"]
    elif "tenant_id" in creds:
        values |= {
            "ARM_CLIENT_ID": creds["client_id"],
            "ARM_CLIENT_SECRET": creds["client_secret"],
            "ARM_TENANT_ID": creds["tenant_id"],
        }
    else:
        values |= {"DATABRICKS_CLIENT_ID": creds["client_id"], "DATABRICKS_CLIENT_SECRET": creds["client_secret"]}
    names = [
        *values,
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
        "DATABRICKS_CONFIG_PROFILE",
    ]
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def sdk_message(exc: Exception) -> str:
    """The SDK's error message without the configuration dump it appends, masked."""
    return redact(str(exc).split(". Config: ", 1)[0].strip())


def _secret_key(reference: str | None) -> str | None:
    """`databricks-token` from `${secret:databricks-token}`."""
    if reference and reference.startswith("${secret:") and reference.endswith("}"):
        return reference[len("${secret:") : -1]
    return None


def open_workspace(environment: Environment) -> Workspace:
    """The workspace of an environment with a `[databricks]` section; credentials resolved from its store."""
    section = environment.config.databricks
    if section is None:
        raise ConfigError(
            f"environment {environment.name!r} has no [environments.{environment.name}.databricks] section",
            hint="Name the workspace host, upload_path and a cluster there.",
        )
    host = environment.resolve(section.host, "databricks.host").rstrip("/")
    credentials = {key: environment.resolve(value, f"databricks.{key}") for key, value in section.credentials().items()}
    for key, value in credentials.items():
        if key != "tenant_id":
            register_secret(value)
    return Workspace(environment, section, host, credentials)
