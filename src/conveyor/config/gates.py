"""The gate step's own settings: its secret store and the sealed evaluation set's location.

The sealed set is kept where training cannot reach it: its URL and the credentials to read it come from the
`[gates] secrets` store (CONVEYOR_SECRETS_GATES in CI, handed to the gate step alone), never from an environment
whose lake a training script opens.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from conveyor.config.environment import resolve_references, secret_references, store_override
from conveyor.config.schema import RESERVED_ENVIRONMENT, GatesConfig
from conveyor.errors import ConfigError
from conveyor.secrets.base import OwnedStore, SecretStore, open_store


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
