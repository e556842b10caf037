"""The release room's Python API: one function per `conveyor` command, each the function that command calls.

`key` is the acting signing key: a `conveyor.trust.SigningKey`, the path of a key file, or None for
`$CONVEYOR_SIGNING_KEY`, then git's `user.signingkey` (ssh-agent works). The acting principal is the one
allowed_signers lists for that key; `expect` (the CLI's `--as`) only asserts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.release.ledger import Ledger
from conveyor.release.releases import PolicyStatus, Releases, StopReport

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conveyor.config import Project
    from conveyor.config.gates import GatePolicy
    from conveyor.release.acting import KeyChoice
    from conveyor.release.audit import ChainReport
    from conveyor.release.monitor import RolloutStatus, WatchOutcome
    from conveyor.release.views import HistoryEntry, LedgerSnapshot, ReleaseView


def _releases(project: Project, ledger: Ledger | None) -> Releases:
    return Releases(project, ledger)


def create_release(
    project: Project,
    build: str | Path | None,
    to: str,
    *,
    key: KeyChoice = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
    adopt: str | None = None,
    canary: int | None = None,
    shadow: bool = False,
) -> ReleaseView:
    """`conveyor release create`: request a build in a stage, signed; deployed at once if no approval is needed.
    `adopt` names the commit a ledger with no policy may adopt (required in CI, see `conveyor.release.adoption`).
    With `canary` (1-99) or `shadow` it rolls out beside the live release (`change_rollout` goes on)."""
    return _releases(project, ledger).create(build, to, key, expect=expect, adopt=adopt, canary=canary, shadow=shadow)


def promote(
    project: Project,
    release: int,
    to: str,
    *,
    key: KeyChoice = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
    canary: int | None = None,
    shadow: bool = False,
) -> ReleaseView:
    """`conveyor release promote`: request the build of a release that went live in the next stage (with
    `canary` or `shadow`: as a rollout beside the release live there)."""
    return _releases(project, ledger).promote(release, to, key, expect=expect, canary=canary, shadow=shadow)


def change_rollout(
    project: Project,
    release: int,
    *,
    weight: int | None = None,
    complete: bool = False,
    abort: bool = False,
    reason: str | None = None,
    key: KeyChoice = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
) -> ReleaseView:
    """`conveyor release rollout`: a new weight or the completion (in effect once approved like a promotion), or
    an abort (at once, no approval: it goes back to what was approved)."""
    return _releases(project, ledger).rollout(
        release, key, weight=weight, complete=complete, abort=abort, reason=reason, expect=expect
    )


def rollout_status(
    project: Project, stage: str, *, window_seconds: int | None = None, ledger: Ledger | None = None
) -> RolloutStatus:
    """`conveyor rollout status`: the stage's rollout, candidate and live side by side, and its rules' state."""
    from conveyor.release import monitor

    return monitor.rollout_status(project, _releases(project, ledger).state(), stage, window_seconds)


def watch_rollout(
    project: Project,
    stage: str,
    *,
    key: KeyChoice = None,
    interval: float = 5.0,
    duration: float | None = None,
    once: bool = False,
    report: Callable[[RolloutStatus], None] | None = None,
    ledger: Ledger | None = None,
) -> WatchOutcome:
    """`conveyor rollout watch`: check the rollout's recorded rules every `interval` s; on the first one broken,
    sign its abort with `key` (a `[trust] watchers` principal), naming the rule and the figures."""
    from conveyor.release import monitor

    releases = _releases(project, ledger)

    def abort(release: int, broken: monitor.RuleCheck, figures: dict[str, float | None]) -> None:
        reason = f"rule {broken.rule!r} broken: {broken.metric} = {broken.value:.4g}"
        releases.rollout(release, key, abort=True, reason=reason, rule=broken.rule, figures=dict(figures))

    releases.identity(key)  # a missing or unlisted key is said before the first check, not at the abort
    return monitor.watch(
        project, releases.state, abort, stage, interval=interval, duration=duration, once=once, report=report
    )


def approve(
    project: Project,
    release: int,
    *,
    key: KeyChoice = None,
    comment: str | None = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
    deploy_now: bool = True,
) -> ReleaseView:
    """`conveyor approve`: sign an approval; the one that completes the recorded policy's count deploys (unless
    `deploy_now` is False: `deploy_release` then deploys it, e.g. in CI)."""
    return _releases(project, ledger).approve(release, key, comment, expect=expect, deploy_now=deploy_now)


def deploy_release(
    project: Project, release: int, *, key: KeyChoice = None, ledger: Ledger | None = None
) -> ReleaseView:
    """`conveyor release deploy`: deploy a release the ledger holds as approved (its signed approvals reached the
    recorded policy's count); refused, naming what is missing, otherwise."""
    return _releases(project, ledger).deploy(release, key)


def reject(
    project: Project,
    release: int,
    *,
    key: KeyChoice = None,
    comment: str | None = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
) -> ReleaseView:
    """`conveyor reject`: sign a rejection (an approver, or the requester withdrawing); it never deploys."""
    return _releases(project, ledger).reject(release, key, comment, expect=expect)


def rollback(
    project: Project,
    stage: str,
    *,
    to: int | None = None,
    key: KeyChoice = None,
    break_glass: bool = False,
    expect: str | None = None,
    ledger: Ledger | None = None,
) -> ReleaseView:
    """`conveyor rollback`: request the earlier release again, as a release needing the stage's approvals
    (none for a break_glass principal who says so)."""
    return _releases(project, ledger).rollback(stage, to, key, break_glass=break_glass, expect=expect)


def resume(
    project: Project, release: int, *, key: KeyChoice = None, force: bool = False, ledger: Ledger | None = None
) -> ReleaseView:
    """`conveyor release resume`: finish a deployment that stopped half-way; done steps are not repeated."""
    return _releases(project, ledger).resume(release, key, force=force)


def history(
    project: Project, stage: str, *, at: datetime | str | None = None, ledger: Ledger | None = None
) -> list[HistoryEntry]:
    """`conveyor history`: what was live in a stage and when, with verified signers and attestation digests."""
    return _releases(project, ledger).history(stage, at)


def list_releases(
    project: Project, *, stage: str | None = None, status: str | None = None, ledger: Ledger | None = None
) -> list[ReleaseView]:
    """`conveyor releases list`: the newest releases."""
    return _releases(project, ledger).list(stage, status)


def read_snapshot(project: Project, *, ledger: Ledger | None = None) -> LedgerSnapshot:
    """One verified reading of every release and stage history (what `releases list`, `history` and `conveyor ui`
    show); a ledger that does not verify still reads, with `verification.ok` false and the problem named."""
    return _releases(project, ledger).snapshot()


def show_release(project: Project, release: int, *, ledger: Ledger | None = None) -> ReleaseView:
    """`conveyor releases show`: one release, its recorded policy, signers, attestations and deployment."""
    return _releases(project, ledger).show(release)


def verify_ledger(project: Project, *, ledger: Ledger | None = None, expect: str | None = None) -> ChainReport:
    """`conveyor audit verify`: every event's chain link, hash, signature and rules, and the releases table; the
    report also says whether the policy in force is this project's. `expect`, a checkpoint (`SEQ:HASH`) published
    earlier, must still be in the ledger: the signatures alone cannot show events cut off its end."""
    from dataclasses import replace

    from conveyor.release.policy import PolicySet

    report = (ledger or Ledger.open(project)).verify_audit(expect)
    return replace(report, project_policy=PolicySet.from_project(project).digest)


@dataclass(frozen=True)
class AuditEntry:
    """One stored event as `audit list` shows it (not verified: `audit verify` does that)."""

    seq: int
    at: datetime
    actor: str
    key: str
    action: str
    release: int | None
    details: dict[str, object]  # the event's data, as its signer wrote it
    recorded_at: datetime | None = None  # the ledger server's clock (PostgreSQL), beside the signer's `at`

    @property
    def clock_gap(self) -> timedelta | None:
        """How far the signer's time is from the ledger server's, when more than `CLOCK_GAP` (else None)."""
        if self.recorded_at is None:
            return None
        gap = self.at.replace(tzinfo=None) - self.recorded_at.replace(tzinfo=None)
        return gap if abs(gap) > CLOCK_GAP else None

    def to_dict(self) -> dict[str, object]:
        gap = self.clock_gap
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "key": self.key,
            "action": self.action,
            "release": self.release,
            "details": self.details,
            "recorded_at": self.recorded_at,
            "clock_gap_seconds": None if gap is None else round(gap.total_seconds(), 3),
        }


CLOCK_GAP = timedelta(minutes=1)  # a signer's clock this far from the ledger server's is shown beside it


def audit_entries(
    project: Project, *, limit: int | None = None, release: int | None = None, ledger: Ledger | None = None
) -> list[AuditEntry]:
    """`conveyor audit list`: the newest events (optionally of one release), oldest first."""
    import json

    rows = (ledger or Ledger.open(project)).events(limit=limit, release=release)
    entries = []
    for row in rows:
        try:
            details = dict(json.loads(row.payload).get("data") or {})
        except ValueError:
            details = {"unreadable": True}
        entries.append(
            AuditEntry(row.seq, row.at, row.principal, row.key, row.kind, row.release_id, details, row.recorded_at)
        )
    return entries


def rebuild_releases_table(project: Project, *, ledger: Ledger | None = None) -> int:
    """`conveyor audit rebuild`: rewrite the releases table from the verified events; returns its rows."""
    return (ledger or Ledger.open(project)).rebuild_release_rows()


def policy_status(project: Project, *, ledger: Ledger | None = None) -> PolicyStatus:
    """`conveyor release policy show`: the policy in force beside the project file's, and open proposals."""
    return _releases(project, ledger).policy()


def propose_policy(
    project: Project,
    *,
    key: KeyChoice = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
    adopt: str | None = None,
) -> PolicyStatus:
    """`conveyor release policy propose`: propose the project file's policy (and allowed_signers) for adoption
    (`adopt`: the commit a ledger with no policy may adopt, as for `create_release`)."""
    return _releases(project, ledger).propose_policy(key, expect=expect, adopt=adopt)


def approve_policy(
    project: Project,
    proposal: int,
    *,
    key: KeyChoice = None,
    expect: str | None = None,
    ledger: Ledger | None = None,
) -> PolicyStatus:
    """`conveyor release policy approve`: approve a proposed policy as an approver of the policy in force."""
    return _releases(project, ledger).approve_policy(proposal, key, expect=expect)


def gate_policy_in_force(project: Project, *, ledger: Ledger | None = None) -> GatePolicy | None:
    """The gate rules the ledger holds in force, for `conveyor gate` (None while it holds no policy: the first
    request adopts the project file's). PolicyRefused when the policy in force records none."""
    state = _releases(project, ledger).state()
    return None if state.policy is None else state.policy.gate_policy()


def stop_stage(
    project: Project,
    stage: str,
    *,
    key: KeyChoice = None,
    expect: str | None = None,
    reason: str | None = None,
    ledger: Ledger | None = None,
) -> StopReport:
    """`conveyor release stop`: take down what is live in a stage, signed (`stage.stopped`, by an approver of a
    stage with approvers); its alias leaves the registry and a local:// stage's servers stop."""
    return _releases(project, ledger).stop(stage, key, expect=expect, reason=reason)


def shut_down_stage(project: Project, stage: str) -> list[str]:
    """Stop the processes a local:// stage runs, recording nothing: the ledger still names what is live, as after
    a reboot (the demo's and the tests' clean-up). `stop_stage` is the decision to take a stage down."""
    from conveyor.errors import ConfigError
    from conveyor.release.targets import target_for

    if stage not in project.config.release:
        raise ConfigError(f"stage {stage!r} is not declared in {project.file}")
    return target_for(project.config.release[stage].target).stop(project.name, project.state_dir, stage)
