"""Does an environment's secret store hold every key the project needs there? (`conveyor secrets check`)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, SecretError
from conveyor.secrets.redaction import WeakSecretError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from conveyor.config.project import Project
    from conveyor.secrets import SecretStore


@dataclass(frozen=True)
class SecretsCheck:
    """The keys one store must hold, which of them it lacks, and which of its values (needed or not) are too weak
    to mask. Keys and reasons only: no value is ever part of it."""

    environment: str
    store: str
    needed: tuple[str, ...]
    missing: tuple[str, ...]
    weak: tuple[tuple[str, str], ...] = ()  # (key, why its value cannot be masked)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.weak

    def require(self) -> None:
        """Raise `CheckFailed` (exit 1) naming the missing keys and the weak ones, and how to set them."""
        problems = []
        if self.missing:
            problems.append(f"{len(self.missing)} secret(s) missing from {self.store}: {', '.join(self.missing)}")
        problems += [f"secret {key!r} in {self.store} cannot be masked safely: {why}" for key, why in self.weak]
        if problems:
            raise CheckFailed(
                "\n".join(problems),
                hint=f"Set each with a long, random value: conveyor secrets set KEY --env {self.environment}",
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "environment": self.environment,
            "store": self.store,
            "needed": list(self.needed),
            "missing": list(self.missing),
            "weak": [{"key": key, "why": why} for key, why in self.weak],
        }


def weak_values(store: SecretStore, keys: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(key, reason) of each value of `keys` in `store` too weak to mask (reading them; a value is never kept)."""
    found = []
    for key in sorted(set(keys)):
        reason = None
        try:
            store.get(key)
        except WeakSecretError as weak:
            reason = weak.message.rsplit("cannot be masked safely: ", 1)[-1]
        except SecretError:
            continue
        if reason is not None:
            found.append((key, reason))
    return tuple(found)


def _listed(store: SecretStore, needed: Iterable[str], present: set[str]) -> set[str]:
    """The keys to read for weakness: every key the store lists (used or not), or only the needed ones of a store
    whose names are not only secrets (`env://` with no prefix)."""
    return present if getattr(store, "lists_only_secrets", True) else set(needed) & present


def check_secrets(project: Project, env: str | None = None) -> SecretsCheck:
    """Which of the secrets `env` needs (its configuration's `${secret:KEY}` references) its store lacks, and
    which values of the store (every key it lists, used or not) are too weak to mask.

    `env = "gates"` checks the gate step's own store for the sealed set's keys (`[gates] eval_data`).
    """
    from conveyor.config.schema import RESERVED_ENVIRONMENT

    if env == RESERVED_ENVIRONMENT:
        gates = project.gates
        needed = gates.required_secrets()
        present = set(gates.secrets.names())
        return SecretsCheck(
            environment=RESERVED_ENVIRONMENT,
            store=gates.secrets.url,
            needed=tuple(needed),
            missing=tuple(key for key in needed if key not in present),
            weak=weak_values(gates.secrets, _listed(gates.secrets, needed, present)),
        )
    environment = project.environment(env)
    needed = project.required_secrets(environment.name)
    present = set(environment.secrets.names())
    return SecretsCheck(
        environment=environment.name,
        store=environment.secrets.url,
        needed=tuple(needed),
        missing=tuple(key for key in needed if key not in present),
        weak=weak_values(environment.secrets, _listed(environment.secrets, needed, present)),
    )
