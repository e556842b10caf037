"""One environment of a project: its secret store, lake, registry and compute, with `${secret:KEY}` resolved."""

from __future__ import annotations

import getpass
import os
import re
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from conveyor.errors import ConfigError
from conveyor.secrets.base import OwnedStore, SecretStore, open_store
from conveyor.secrets.redaction import WeakSecretError, declare_public

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conveyor.config.schema import EnvironmentConfig, ProjectFile
    from conveyor.lake import Lake

REFERENCE = re.compile(r"\$\{(secret|env):([A-Za-z0-9_.\-/]+)\}")


def secret_references(value: str) -> set[str]:
    """The keys of the `${secret:KEY}` references in a configured value."""
    return {m.group(2) for m in REFERENCE.finditer(value) if m.group(1) == "secret"}


_WARNED_TRACKING_URI: set[str] = set()


def _warn_if_tracking_uri_ignored(env: str, uri: str) -> None:
    """Say once per environment that `$MLFLOW_TRACKING_URI` does not choose its registry (conveyor.toml does).

    Every environment has its own registry, so one process-wide variable cannot pick it: it is honoured only where
    the project file asks for it (`registry = "${env:MLFLOW_TRACKING_URI}"`). The value is never printed: a
    tracking URI may carry a password.
    """
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if not given or given == uri or env in _WARNED_TRACKING_URI:
        return
    _WARNED_TRACKING_URI.add(env)
    sys.stderr.write(
        f"warning: MLFLOW_TRACKING_URI is set but ignored: environment {env!r} uses the registry of conveyor.toml. "
        f'To use the variable, set registry = "${{env:MLFLOW_TRACKING_URI}}" in [environments.{env}].\n'
    )


class GateStoreView(Protocol):
    """What an environment's readers see of the project's gate store."""

    @property
    def secrets_url(self) -> str: ...


class ProjectView(Protocol):
    """What an environment knows of its project: `conveyor.config.Project`, seen from below (no import cycle)."""

    root: Path
    config: ProjectFile

    @property
    def name(self) -> str: ...

    @property
    def file(self) -> Path: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def gates(self) -> GateStoreView: ...

    def environment(self, name: str | None = None) -> Environment: ...


def resolve_references(value: str, where: str, secret: Callable[[str], str] | None, project_file: Path) -> str:
    """`value` with `${env:VAR}` from the process environment and `${secret:KEY}` through `secret` (None: refused).

    `where` names the configured key in errors (`environments.dev.lake`, `gates.eval_data`).
    """

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.groups()
        if kind == "env":
            if name not in os.environ:
                raise ConfigError(
                    f"{where} refers to ${{env:{name}}}, which is not set",
                    hint=f"Export {name}, or write the value into {project_file}.",
                )
            return os.environ[name]
        if secret is None:
            raise ConfigError(f"{where} cannot refer to a secret")
        return secret(name)

    return REFERENCE.sub(substitute, value)


def store_override(name: str) -> str | None:
    """`CONVEYOR_SECRETS_<NAME>`: how CI hands a step its own store (`dev` → CONVEYOR_SECRETS_DEV)."""
    return os.environ.get(f"CONVEYOR_SECRETS_{name.upper().replace('-', '_')}") or None


class Environment:
    """dev, stage, prod...: the same code runs in each; only this configuration and its secrets differ."""

    def __init__(self, name: str, config: EnvironmentConfig, project: ProjectView) -> None:
        self.name = name
        self.config = config
        self.project = project

    def __repr__(self) -> str:
        return f"Environment({self.name!r})"

    @property
    def secrets_url(self) -> str:
        """The store URL: `CONVEYOR_SECRETS_<ENV>` when set (how CI hands over its own store), else the file's."""
        return store_override(self.name) or self.resolve(self.config.secrets, "secrets", allow_secrets=False)

    @cached_property
    def secrets(self) -> SecretStore:
        store = open_store(self.secrets_url, self.project.root, public_keys=frozenset(self.public_secret_keys()))
        return OwnedStore(store, f"--env {self.name}")

    def mask_every_secret(self) -> None:
        """Read every secret the store holds, so this process (and what it forks) masks each wherever it prints,
        not only those it uses; a value too weak to mask refuses (naming its key) rather than going unmasked."""
        public = self.public_secret_keys()
        for key in self.secrets.names():
            if key in public:
                continue
            try:
                self.secrets.get(key)
            except WeakSecretError:
                raise
            except Exception:  # noqa: S112 -- a key that cannot be read now cannot be printed by this process either
                continue

    def secret(self, key: str) -> str:
        return self.secrets.get(key)

    def resolve(self, value: str, key: str, *, allow_secrets: bool = True) -> str:
        """Replace `${secret:KEY}` (from this environment's store) and `${env:VAR}` in a configured value."""
        secret = self.secret if allow_secrets else None
        return resolve_references(value, f"environments.{self.name}.{key}", secret, self.project.file)

    @cached_property
    def lake_url(self) -> str:
        return self.resolve(self.config.lake, "lake")

    @cached_property
    def registry_uri(self) -> str:
        """The MLflow tracking URI; relative sqlite paths are taken from the project root."""
        raw = self.config.registry or f"sqlite:///.conveyor/{self.name}/mlflow.db"
        uri = self.resolve(raw, "registry")
        _warn_if_tracking_uri_ignored(self.name, uri)
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            path = self.project.root / uri.removeprefix("sqlite:///")
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{path}"
        return uri

    @property
    def artifact_root(self) -> Path:
        """Where a local registry keeps model files (beside its sqlite database)."""
        return self.project.state_dir / self.name / "artifacts"

    @cached_property
    def state(self) -> str:
        value = self.resolve(self.config.state, "state") if self.config.state else self.name
        declare_public(value)  # published by design as the model's `state` tag
        return value

    @cached_property
    def created_by(self) -> str:
        if self.config.created_by:
            value = self.resolve(self.config.created_by, "created_by")
        else:
            value = os.environ.get("CONVEYOR_USER") or getpass.getuser()
        declare_public(value)  # published by design as the model's `created_by` tag
        return value

    @property
    def compute(self) -> str:
        return self.config.compute

    def lake(self) -> Lake:
        """This environment's data lake, rooted at and confined to its URL."""
        from conveyor.lake import open_lake

        return open_lake(self.lake_url, self.secrets, self.project.root, env=self.name)

    def required_secrets(self) -> list[str]:
        """The secret keys this environment's configuration refers to (its `[databricks]` section's too)."""
        values = [v for v in self.config.model_dump().values() if isinstance(v, str)]
        if self.config.databricks is not None:
            section = self.config.databricks
            values += [section.host, section.upload_path, *section.credentials().values()]
        return sorted({key for value in values for key in secret_references(value)})

    def public_secret_keys(self) -> set[str]:
        """Secret keys whose values are published by design (they become the `state` and `created_by` tags)."""
        return secret_references(self.config.state or "") | secret_references(self.config.created_by or "")
