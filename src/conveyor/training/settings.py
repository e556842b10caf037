"""What a training child is told when it starts: nothing here is a secret or a credential."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.config import Environment


@dataclass(frozen=True)
class RunSettings:
    """The run's facts the script may know: environment name and state, compute, where its files go."""

    env: str
    state: str
    compute: str
    project: str
    root: str
    script: str
    args: list[str]
    output_dir: str
    declared_secrets: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, environment: Environment, script: Path, args: Sequence[str], output_dir: Path) -> RunSettings:
        """The settings of a run of `script` with `args` in `environment`, its model written to `output_dir`."""
        project = environment.project
        return cls(
            env=environment.name,
            state=environment.state,
            compute=environment.compute,
            project=project.name,
            root=str(project.root),
            script=str(script),
            args=list(args),
            output_dir=str(output_dir),
            declared_secrets=list(project.config.training.secrets),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})
