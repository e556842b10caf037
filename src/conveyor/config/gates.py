"""The gate step's own settings: its secret store and the sealed evaluation set's location.

The sealed set is kept where training cannot reach it: its URL and the credentials to read it come from the
`[gates] secrets` store (CONVEYOR_SECRETS_GATES in CI, handed to the gate step alone), never from an environment
whose lake a training script opens.

`GatePolicy` is what of `[gates]` the release policy records: the rules (`metrics`) and the two settings that say
where the sealed set comes from (`eval_data` and `secrets`, as the project file writes them: references, never
resolved values). A release accepts only a gate attestation made under the gate policy in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.config.environment import resolve_references, secret_references, store_override
from conveyor.config.schema import RESERVED_ENVIRONMENT, GatesConfig
from conveyor.errors import ConfigError
from conveyor.secrets.base import OwnedStore, SecretStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


class GateSettings:
    """`[gates]` of one project, with its store opened on first use."""

    def __init__(self, config: GatesConfig, project_root: Path, project_file: Path) -> None:
        self.config = config
        self.root = project_root
        self.file = project_file

    @property
    def secrets_url(self) -> str:
        """The gate store's URL: `CONVEYOR_SECRETS_GATES` when set, else `[gates] secrets`."""
        override = store_override(RESERVED_ENVIRONMENT)
        if override:
            return override
        if not self.config.secrets:
            raise ConfigError(
                f"[gates] secrets is not set in {self.file}: the sealed evaluation set needs a store of its own",
                hint=(
                    'Add secrets = "file://~/.conveyor/secrets/PROJECT/gates.toml" under [gates] (CI: set '
                    "CONVEYOR_SECRETS_GATES for the gate step only), and put eval-data-url there."
                ),
            )
        return resolve_references(self.config.secrets, "gates.secrets", None, self.file)

    @cached_property
    def secrets(self) -> SecretStore:
        return OwnedStore(open_store(self.secrets_url, self.root), "--env gates")

    def eval_data_url(self) -> str:
        """The sealed set's URL, resolved through the gate store."""
        if not self.config.eval_data:
            raise ConfigError(
                f"[gates] eval_data is not set in {self.file}",
                hint='Set eval_data = "${secret:eval-data-url}" and put the sealed file\'s URL in the gate store.',
            )
        return resolve_references(self.config.eval_data, "gates.eval_data", self.secrets.get, self.file)

    def required_secrets(self) -> list[str]:
        """The keys the gate store must hold (the references in `[gates]`)."""
        return sorted(secret_references(self.config.eval_data or ""))


@dataclass(frozen=True)
class GatePolicy:
    """The `[gates]` rules and sealed-set settings as written in the project file: part of the release policy."""

    metrics: tuple[tuple[str, str], ...]
    eval_data: str | None
    secrets: str | None

    @classmethod
    def from_config(cls, config: GatesConfig) -> GatePolicy:
        return cls(tuple(sorted(config.metrics.items())), config.eval_data, config.secrets)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GatePolicy:
        metrics = dict(data.get("metrics") or {})
        return cls(
            tuple(sorted((str(k), str(v)) for k, v in metrics.items())), data.get("eval_data"), data.get("secrets")
        )

    def to_json(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "eval_data": self.eval_data, "secrets": self.secrets}

    def changes(self, other: GatePolicy) -> list[str]:
        """What `other` changes from these settings, one line each (`gates.metrics.r2: '>= 0' → '>= -5'`)."""
        mine, theirs = dict(self.metrics), dict(other.metrics)
        lines = [
            f"gates.metrics.{name}: {mine.get(name)!r} → {theirs.get(name)!r}"
            for name in sorted(set(mine) | set(theirs))
            if mine.get(name) != theirs.get(name)
        ]
        for setting in ("eval_data", "secrets"):
            old, new = getattr(self, setting), getattr(other, setting)
            if old != new:
                lines.append(f"gates.{setting}: {old!r} → {new!r}")
        return lines
