"""What the ledger says of a rollout: a candidate release serving beside a stage's live one, its weight over time.

A rollout is a release requested with `rollout = {mode, weight}` (`release promote N --to prod --canary 10`, or
`--shadow`). Its deployment starts the candidate's server and splits the stage's traffic (`rollout.started`).
Each later change, a new weight or the completion, is a `rollout.changed` event that takes effect once the
stage's approvers approved it (`rollout.approved`, as for a promotion; at once in a stage without approvers). A
completed rollout deploys the candidate as the stage's live release. An abort (`rollout.aborted`) needs no
approval, since it only goes back to what was approved; it is signed by the requester, an approver, a break_glass
principal, or a `[trust] watchers` principal naming the rule the candidate broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.release.status import RolloutMode

if TYPE_CHECKING:
    from datetime import datetime


@dataclass
class RolloutChange:
    """One `rollout.changed`: a new weight, or the completion; who asked, who approved, when it took effect."""

    seq: int
    by: str
    at: datetime
    weight: int | None
    complete: bool
    approvals: list[str] = field(default_factory=list)
    effective_at: datetime | None = None

    @property
    def effective(self) -> bool:
        return self.effective_at is not None

    def describe(self) -> str:
        return "complete" if self.complete else f"weight {self.weight}%"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "by": self.by,
            "at": self.at,
            "weight": self.weight,
            "complete": self.complete,
            "approved_by": list(self.approvals),
            "effective_at": self.effective_at,
        }


@dataclass
class RolloutState:
    """A release's rollout: its mode, the live release it serves beside, the weight in effect and its changes."""

    release: int
    mode: RolloutMode
    weight: int  # the share of requests the candidate answers (canary); 0 for a shadow (it answers none)
    beside: int | None = None  # the release live in the stage when the rollout started
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # completed | aborted
    aborted_by: str | None = None
    abort_reason: str | None = None
    abort_rule: str | None = None
    abort_figures: dict[str, Any] | None = None
    changes: list[RolloutChange] = field(default_factory=list)
    weights: list[tuple[datetime, int]] = field(default_factory=list)  # the weight in effect from each time on

    @property
    def pending(self) -> RolloutChange | None:
        last = self.changes[-1] if self.changes else None
        return last if last is not None and not last.effective else None

    @property
    def completing(self) -> bool:
        return any(change.complete and change.effective for change in self.changes)

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "mode": str(self.mode),
            "weight": self.weight,
            "beside": self.beside,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "aborted_by": self.aborted_by,
            "abort_reason": self.abort_reason,
            "abort_rule": self.abort_rule,
            "abort_figures": self.abort_figures,
            "changes": [change.to_dict() for change in self.changes],
            "weights": [{"from": at, "weight": weight} for at, weight in self.weights],
        }


def rollout_from_request(release: int, data: dict[str, Any]) -> RolloutState | None:
    """The rollout a signed request asks for (None for a plain release); ValueError for one that cannot be."""
    asked = data.get("rollout")
    if asked is None:
        return None
    mode = RolloutMode(str(asked["mode"]))
    weight = 0 if mode == RolloutMode.SHADOW else int(asked["weight"])
    if mode == RolloutMode.CANARY and not 1 <= weight <= 99:
        raise ValueError(f"a canary's weight is 1-99 (% of requests), not {weight}")
    return RolloutState(release, mode, weight)
