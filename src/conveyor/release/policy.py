"""A stage's release policy (`[release.STAGE]`): who approves, how many, who may not, how long it waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from conveyor.config import Project, ReleaseStageConfig
from conveyor.errors import CheckFailed, ConfigError


class PolicyRefused(CheckFailed):
    """The stage's policy does not allow what was asked (exit code 1)."""


@dataclass(frozen=True)
class ReleasePolicy:
    """The rules of one stage."""

    stage: str
    config: ReleaseStageConfig

    @classmethod
    def of(cls, project: Project, stage: str) -> ReleasePolicy:
        stages = project.config.release
        if stage not in stages:
            known = ", ".join(stages) or "none"
            raise ConfigError(
                f"stage {stage!r} is not declared in {project.file}",
                hint=f"Declared stages: {known}. Add a [release.{stage}] section with a target.",
            )
        config = stages[stage]
        if config.min_approvals > len(config.approvers):
            raise ConfigError(
                f"release.{stage}.min_approvals = {config.min_approvals} but only {len(config.approvers)} approvers "
                "are named",
                hint=f"Name at least {config.min_approvals} people in release.{stage}.approvers.",
            )
        for required in config.requires:
            if required not in stages:
                raise ConfigError(f"release.{stage}.requires names {required!r}, which is not a declared stage")
        return cls(stage, config)

    @property
    def needs_approval(self) -> bool:
        return self.config.min_approvals > 0

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.config.timeout_seconds())

    def check_approver(self, actor: str, requester: str) -> None:
        """Refuse a person who is not a named approver, or the requester unless the policy allows it."""
        if actor not in self.config.approvers:
            raise PolicyRefused(
                f"{actor} is not an approver of {self.stage}",
                hint=f"Approvers of {self.stage}: {', '.join(self.config.approvers) or 'none'} "
                f"(release.{self.stage}.approvers). Act as one with --as NAME or $CONVEYOR_USER.",
            )
        if actor == requester and not self.config.requester_may_approve:
            raise PolicyRefused(
                f"{actor} requested this release and may not approve it",
                hint=f"Another approver of {self.stage} must approve (release.{self.stage}.requester_may_approve = "
                "false).",
            )

    def check_may_roll_back(self, actor: str) -> None:
        if self.config.approvers and actor not in self.config.approvers:
            raise PolicyRefused(
                f"{actor} may not roll back {self.stage}: only its approvers may",
                hint=f"Approvers of {self.stage}: {', '.join(self.config.approvers)}.",
            )
