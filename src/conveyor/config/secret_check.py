"""Does an environment's secret store hold every key the project needs there? (`conveyor secrets check`)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed

if TYPE_CHECKING:
    from conveyor.config.project import Project


@dataclass(frozen=True)
class SecretsCheck:
    """The keys one store must hold, and which of them it lacks. Names only: no value is read."""

    environment: str
    store: str
    needed: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.missing

    def require(self) -> None:
        """Raise `CheckFailed` (exit 1) naming the missing keys and how to set them."""
        if self.missing:
            raise CheckFailed(
                f"{len(self.missing)} secret(s) missing from {self.store}: {', '.join(self.missing)}",
                hint=f"Set each with: conveyor secrets set KEY --env {self.environment}",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "store": self.store,
            "needed": list(self.needed),
            "missing": list(self.missing),
        }


def check_secrets(project: Project, env: str | None = None) -> SecretsCheck:
    """Which of the secrets `env` needs (its configuration's `${secret:KEY}` references) its store lacks.

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
        )
    environment = project.environment(env)
    needed = project.required_secrets(environment.name)
    present = set(environment.secrets.names())
    return SecretsCheck(
        environment=environment.name,
        store=environment.secrets.url,
        needed=tuple(needed),
        missing=tuple(key for key in needed if key not in present),
    )
