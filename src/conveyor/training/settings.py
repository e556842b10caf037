"""What a training child is told when it starts: nothing here is a secret or a credential."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    """The run's facts the script may know: environment name and state, compute, where its files go
    (`conveyor.compute.child.run_settings` makes them from the environment)."""

    env: str
    state: str
    compute: str
    project: str
    root: str
    script: str
    args: list[str]
    output_dir: str
    declared_secrets: list[str]
    spark: bool = False  # the compute is Spark (its entry says so; the child reads no configuration)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
