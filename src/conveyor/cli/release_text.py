"""How `conveyor release`, `releases`, `history` and `audit` read as text: pure functions from the release room's
views to strings.

`describe`, `history_block` and `audit_lines` are rich markup (user text in them is escaped) for stdout;
`policy_lines`, `stop_lines`, `stopped_line` and `verify_lines` are plain messages, which `say` shows literally.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from conveyor.release import AuditEntry, ChainReport, HistoryEntry, PolicyStatus, ReleaseView, StopReport


def timestamp(moment: datetime | None) -> str:
    """`2026-05-01 12:00:00Z`, or `-` for no time."""
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment else "-"


def span(gap: timedelta) -> str:
    """A length of time as people say it: `2 d 3 h 4 min`, `1 h 0 min`, `4 min 5 s`."""
    seconds = int(gap.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days} d"] if days else []
    return " ".join([*parts, f"{hours} h {rest // 60} min" if hours or days else f"{rest // 60} min {rest % 60} s"])


def short(digest: str | None) -> str:
    """A digest's short form, or `-` for none."""
    from conveyor.package import short_digest

    return short_digest(digest) if digest else "-"


def describe(view: ReleaseView) -> str:
    """A release (`releases show` and every command that changes one): what it ships, under which policy, who
    decided, its rollout and deployment, and whether the ledger verified."""
    model_text = f" {view.model.label()}" if view.model.name else ""
    glass = " [bold red]break glass[/]" if view.break_glass else ""
    lines = [
        f"release {view.id} → {view.stage}: [bold]{view.status}[/] ({view.kind}{model_text}, "
        f"build {short(view.build)}){glass}",
        f"  requested by {view.requested_by} ({view.requested_key}) at {timestamp(view.requested_at)}",
        f"  image {view.image_digest or '-'}",
        f"  policy {short(view.policy_set)} ([release.{view.stage}] {short(view.policy_digest)}): "
        f"{view.min_approvals} of {', '.join(view.policy.approvers) or 'no approvers'}",
    ]
    for attestation in view.attestations:
        lines.append(f"  attestation {attestation.digest} ({attestation.predicate_type})")
    if view.status == "pending":
        have = len(view.approved_by)
        lines.append(
            f"  needs {view.min_approvals - have} more approval(s) before {timestamp(view.expires_at)}: "
            f"conveyor approve {view.id} --key APPROVER_KEY"
        )
    for approval in view.approvals:
        comment = f": {escape(approval.comment)}" if approval.comment else ""  # user text, never markup
        who = f"{approval.actor} ({approval.key})"
        lines.append(f"  {approval.decision}d by {who} at {timestamp(approval.at)}{comment}")
    if view.rollout is not None:
        lines += rollout_lines(view)
    if view.deployment:
        deployment = view.deployment
        lines.append(f"  deployment {deployment.status}: {', '.join(deployment.steps) or 'no step done'}")
        if deployment.reference:
            lines.append(f"  at {deployment.reference}")
        if deployment.alias:
            lines.append(f"  alias {deployment.alias}")
    if view.error:
        lines.append(f"  [red]error:[/] {escape(view.error)}")
    signers = sorted({(s.by, s.key) for s in view.signers})
    lines.append("  signed by " + ", ".join(f"{who} ({key})" for who, key in signers))
    if view.verification.ok:
        lines.append("  [green]every event verified[/] (signatures, chain, recorded policy)")
    else:
        lines.append(f"  [bold red]ledger does not verify:[/] {view.verification.problem}")
    return "\n".join(lines)


def rollout_lines(view: ReleaseView) -> list[str]:
    """A rollout release's mode and share, its weights over time, its changes and how it ended (none for a
    release that is not a rollout)."""
    rollout = view.rollout
    if rollout is None:
        return []
    share = "a shadow (answers none)" if rollout.mode == "shadow" else f"{rollout.weight}% of requests"
    beside = f" beside release {rollout.beside}" if rollout.beside is not None else ""
    lines = [f"  rollout {rollout.mode}{beside}: {share}" + (f", {rollout.outcome}" if rollout.outcome else "")]
    if rollout.weights:
        lines.append("  weights " + ", ".join(f"{weight}% from {timestamp(at)}" for at, weight in rollout.weights))
    for change in rollout.changes:
        state = f"in effect {timestamp(change.effective_at)}" if change.effective else "waiting for approval"
        approved = f", approved by {', '.join(change.approvals)}" if change.approvals else ""
        lines.append(f"  asked {change.describe()} by {change.by} at {timestamp(change.at)}{approved}: {state}")
    if rollout.pending is not None:
        lines.append(f"  needs approval: conveyor approve {view.id} --key APPROVER_KEY")
    if rollout.aborted_by:
        rule = f" (rule {escape(rollout.abort_rule)})" if rollout.abort_rule else ""
        why = f": {escape(rollout.abort_reason)}" if rollout.abort_reason else ""
        lines.append(f"  aborted by {rollout.aborted_by} at {timestamp(rollout.ended_at)}{rule}{why}")
    return lines


def history_block(entry: HistoryEntry) -> str:
    """One release's stretch in a stage, with its verified signers and attestation digests."""
    glass = " [bold red]break glass[/]" if entry.break_glass else ""
    until = timestamp(entry.live_until) if entry.live_until else "now"
    if entry.stopped_by:
        reason = f": {escape(entry.stop_reason)}" if entry.stop_reason else ""
        until += f" (stopped by {entry.stopped_by}{reason})"
    approved = ", ".join(entry.approved_by) or ("no one (break glass)" if entry.break_glass else "no one needed")
    signers = sorted({(s.by, s.key) for s in entry.signers})
    lines = [
        f"release {entry.release} ({entry.kind}{glass}) {entry.model.label()}, build {short(entry.build)}, "
        f"image {entry.image_digest or '-'}",
        f"  live {timestamp(entry.live_from)} → {until}; requested by {entry.requested_by}, approved by {approved}, "
        f"deployed by {entry.deployed_by}",
        "  signed by " + ", ".join(f"{who} ({key})" for who, key in signers),
        "  attestations " + (", ".join(entry.attestations) or "none"),
    ]
    if entry.reference:
        lines.insert(1, f"  at {entry.reference}")
    if entry.rollout is not None:
        steps = ", ".join(f"{weight}% from {timestamp(at)}" for at, weight in entry.rollout.weights)
        lines.append(f"  came in as a {entry.rollout.mode}: {steps}")
    for beside in entry.beside:
        if beside.release == entry.release:
            continue
        steps = ", ".join(f"{weight}% from {timestamp(at)}" for at, weight in beside.weights) or "never started"
        outcome = beside.outcome or "running"
        if beside.aborted_by:
            rule = f", rule {escape(beside.abort_rule)}" if beside.abort_rule else ""
            outcome += f" by {beside.aborted_by}{rule}"
        lines.append(f"  beside it: release {beside.release} as a {beside.mode} ({steps}): {outcome}")
    return "\n".join(lines)


def stopped_line(stage: str, at: str, stopped: HistoryEntry) -> str:
    """`history STAGE --at T` when nothing was live at T because `release stop` had taken the stage down."""
    return (
        f"{stage} was stopped at {at}: release {stopped.release} was taken down at "
        f"{timestamp(stopped.live_until)} by {stopped.stopped_by}"
        + (f" ({stopped.stop_reason})" if stopped.stop_reason else "")
    )


def stop_lines(report: StopReport) -> list[str]:
    """What `release stop` did: the release it took down and who signed that, then what stopped."""
    if report.release is not None:
        first = (
            f"release {report.release} taken down in {report.stage}: signed by {report.by} at {timestamp(report.at)}"
        )
    else:
        first = f"nothing was live in {report.stage}: nothing signed"
    stopped = "\n".join(f"stopped {item}" for item in report.stopped)
    return [first, stopped or f"nothing ran for {report.stage} on this machine"]


def policy_lines(status: PolicyStatus) -> list[str]:
    """The policy in force (or that there is none yet), how the project file's differs, and each open proposal
    with its approvals and what it still needs."""
    if status.in_force_digest is None:
        lines = [f"no policy in force yet: the first request adopts this project's ({short(status.project_digest)})"]
    else:
        lines = [
            f"policy in force: {short(status.in_force_digest)}, adopted at event {status.adopted_at_event} "
            f"by {status.adopted_by}"
        ]
        if status.same:
            lines.append("the project file's policy is the same")
        else:
            lines.append("the project file's policy differs:\n  " + "\n  ".join(status.changes))
    for proposal in status.proposals:
        missing = "; ".join(proposal.missing) or "nothing"
        lines.append(
            f"proposal {proposal.proposal} by {proposal.proposed_by} ({short(proposal.digest)}): "
            f"approved by {', '.join(proposal.approved_by) or 'no one yet'}; needs {missing}"
        )
    return lines


def audit_lines(entry: AuditEntry) -> list[str]:
    """One event of `audit list`: when, who signed (principal and key), what; and, when the signer's clock was
    far from the ledger server's, by how much."""
    subject = f"release {entry.release}" if entry.release is not None else "policy"
    glass = " (break glass)" if entry.details.get("break_glass") else ""
    lines = [f"{entry.seq:>5} {timestamp(entry.at)} {entry.actor:<10} {entry.action:<20} {subject}{glass}  {entry.key}"]
    gap = entry.clock_gap
    if gap is not None:  # the signer's clock against the team's ledger server
        ahead = "ahead of" if gap.total_seconds() > 0 else "behind"
        lines.append(
            f"      [yellow]the ledger server recorded it at {timestamp(entry.recorded_at)}: the signer's clock was "
            f"{span(abs(gap))} {ahead} it[/]"
        )
    return lines


def verify_lines(report: ChainReport) -> list[str]:
    """`audit verify` on a ledger that verified: how many events, the policy, the checkpoint to keep, and whether
    the policy in force is this project file's."""
    lines = [
        f"ledger verified: {report.entries} signed events, policy {short(report.policy)}",
        f"checkpoint {report.checkpoint}  (keep it outside the ledger; check it with --expect)",
    ]
    if not report.policy_matches_project:
        lines.append(
            f"note: the policy in force ({short(report.policy)}) is not this project file's "
            f"({short(report.project_policy)}): see `conveyor release policy show`"
        )
    return lines
