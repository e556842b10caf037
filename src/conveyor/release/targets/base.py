"""What every deployment target is: named steps, each idempotent, each returning a `StepResult`.

A deployment runs a target's steps in order and records each result in the ledger as it completes; a deployment
killed half-way resumes with the steps not yet recorded, so every step must be safe to run again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.release.shipment import Shipment
    from conveyor.secrets import SecretStore


@dataclass(frozen=True)
class StepResult:
    """What one step did, as the ledger keeps it: where the release is reachable, and how to find what runs."""

    reference: str | None = None
    digest: str | None = None
    engine: str | None = None
    image: str | None = None
    handle: str | None = None
    url: str | None = None
    log: str | None = None
    note: str | None = None
    referrers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that are set (the form stored in a signed event)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return cls(
            reference=text("reference"),
            digest=text("digest"),
            engine=text("engine"),
            image=text("image"),
            handle=text("handle"),
            url=text("url"),
            log=text("log"),
            note=text("note"),
            referrers=tuple(str(r) for r in data.get("referrers") or ()),
        )


@dataclass(frozen=True)
class DeployContext:
    """What a step needs: the project, the stage, the release and what it ships, and the steps already done."""

    project_name: str
    state_dir: Path
    stage: str
    release_id: int
    shipment: Shipment
    done: dict[str, StepResult] = field(default_factory=dict)
    secret_stores: tuple[SecretStore, ...] = ()  # every store the project reads: nothing pushed may hold a value
    rollout: RolloutPlan | None = None  # set when the release rolls out beside the live one


@dataclass(frozen=True)
class RolloutPlan:
    """How a rollout's candidate serves: `canary` (answers `weight`% of requests) or `shadow` (a copy of each)."""

    mode: str
    weight: int


class Target(ABC):
    """A place releases go. Subclasses parse their URL in `__init__` (ConfigError when it is wrong)."""

    scheme: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def steps(self) -> list[str]:
        """The step names, in order."""

    @abstractmethod
    def run_step(self, name: str, context: DeployContext) -> StepResult:
        """Run one step (again, if a deployment resumes); raise ConveyorError when it fails."""

    def reroute(self, state_dir: Path, stage: str, candidate: int, digest: str, plan: RolloutPlan | None) -> list[str]:
        """Serve the running rollout of release `candidate` (package `digest`) at `plan` (a new weight), or, with
        None, stop it and serve the live release alone; says what changed."""
        raise NotImplementedError(f"{type(self).__name__} runs no rollouts")

    def stop(self, project_name: str, state_dir: Path, stage: str) -> list[str]:
        """Stop what this target runs for the stage (a local server; nothing for a registry); says what stopped."""
        return []


def release_tag(context: DeployContext) -> str:
    """The image tag of a release: model version and release id, e.g. `v3-r12` (docker tag syntax)."""
    version = context.shipment.model_version
    return f"v{version}-r{context.release_id}" if version else f"r{context.release_id}"
