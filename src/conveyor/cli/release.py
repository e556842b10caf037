"""`conveyor release`, `approve`, `reject`, `rollback`, `releases`, `history`, `audit`: gated releases."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.options import JsonOption, ProjectOption
from conveyor.cli.output import emit_json, say, stdout
from conveyor.config import load_project

if TYPE_CHECKING:  # the release room (SQLAlchemy) is imported only by the commands that use it
    from conveyor.release import HistoryEntry, Releases, ReleaseView

AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who is acting (default: $CONVEYOR_USER, the CI's user: GITHUB_ACTOR, BUILD_REQUESTEDFOR, "
        "RELEASE_REQUESTEDFOR; else the login name). Recorded on every ledger entry.",
        show_default=False,
    ),
]
CommentOption = Annotated[str | None, typer.Option("--comment", "-m", help="Why: kept in the ledger.")]
ReleaseArgument = Annotated[int, typer.Argument(help="Release number (see `conveyor releases list`).")]
StageArgument = Annotated[str, typer.Argument(help="Stage name, a [release.STAGE] of conveyor.toml (qa, prod...).")]

release_app = typer.Typer(
    help="Put a tested build into a stage (qa, prod...) under the stage's policy.\n\n"
    "Stages are the `[release.STAGE]` sections of conveyor.toml: `target` (oci://HOST/REPO: the tested image is "
    "pushed by digest and the digest read back; local://PORT: the image runs on 127.0.0.1:PORT until "
    "/health/ready answers), `approvers`, `min_approvals`, `requester_may_approve`, `timeout` and `requires`.\n\n"
    "Every deployment also points the MLflow alias named after the stage (e.g. `prod`) at the build's model "
    "version, in the registry of the environment the build was made from (build.json `env`).\n\n"
    "Everything is kept in the ledger (.conveyor/ledger.db, or [ledger] url / $CONVEYOR_LEDGER_URL for a team).\n\n"
    "```\n"
    "conveyor release create 3f9a2c --to qa        # a tested build; qa needs no approval: deployed now\n"
    "conveyor release promote 1 --to prod          # the same build, pending in prod\n"
    "conveyor approve 2 --as alice -m 'r2 is fine' # deployed once min_approvals are in\n"
    "conveyor history prod                         # what was live when, who asked, who approved\n"
    "conveyor rollback prod                        # the release before, redeployed as a new release\n"
    "```",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
releases_app = typer.Typer(help="Look at releases: list them or show one.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The ledger's audit log: every change, who made it and when, each entry hash-chained to the one before.",
    no_args_is_help=True,
)


def _desk(project: Any) -> Releases:
    from conveyor.release import Releases

    return Releases(load_project(project))


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment else "-"


def _model(model: dict[str, Any]) -> str:
    return f"{model.get('name')}/{model.get('version')}" if model.get("name") else "-"


def _describe(view: ReleaseView) -> str:
    from conveyor.package.record import short_digest

    model_text = f" {_model(view.model)}" if view.model.get("name") else ""
    lines = [
        f"release {view.id} → {view.stage}: [bold]{view.status}[/] ({view.kind}{model_text}, "
        f"build {short_digest(view.build)})",
        f"  requested by {view.requested_by} at {_time(view.requested_at)}",
    ]
    if view.status == "pending":
        have = len(view.approved_by)
        lines.append(
            f"  needs {view.min_approvals - have} more approval(s) before {_time(view.expires_at)}: "
            f"conveyor approve {view.id} --as NAME"
        )
    for approval in view.approvals:
        comment = f": {approval['comment']}" if approval.get("comment") else ""
        lines.append(f"  {approval['decision']}d by {approval['actor']} at {_time(approval['at'])}{comment}")
    if view.deployment:
        deployment = view.deployment
        lines.append(f"  deployment {deployment['status']}: {', '.join(deployment['steps']) or 'no step done'}")
        if deployment.get("reference"):
            lines.append(f"  at {deployment['reference']}")
        if deployment.get("alias"):
            lines.append(f"  alias {deployment['alias']}")
    if view.error:
        lines.append(f"  [red]error:[/] {view.error}")
    return "\n".join(lines)


def _show(view: ReleaseView, as_json: bool) -> None:
    if as_json:
        emit_json(view.to_dict())
    else:
        say(_describe(view))


@release_app.command("create")
def create(
    build: Annotated[str, typer.Argument(help="A build.json path, or the package digest (a unique prefix is enough).")],
    to: Annotated[str, typer.Option("--to", help="Stage to release into, e.g. qa.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Release a build to a stage: refused unless its tests and gates passed and every byte still matches.

    Deploys at once when the stage needs no approval (min_approvals = 0); otherwise the release waits for
    `conveyor approve`. A stage that `requires` others takes only builds already deployed there.
    """
    _show(_desk(project).create(build, to, actor), as_json)


@release_app.command("promote")
def promote(
    release: ReleaseArgument,
    to: Annotated[str, typer.Option("--to", help="Stage to promote into, e.g. prod.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Request the same build as a deployed release in the next stage (pending until approved)."""
    _show(_desk(project).promote(release, to, actor), as_json)


@release_app.command("resume")
def resume(
    release: ReleaseArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Take over from a deployer on another machine that is known to be gone.")
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Finish a deployment that was killed or failed half-way. Finished steps are not repeated."""
    _show(_desk(project).resume(release, actor, force=force), as_json)


def approve(
    release: ReleaseArgument,
    comment: CommentOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Approve a pending release as one of the stage's named approvers.

    The requester may not approve unless `requester_may_approve = true`; an approval after the stage's
    `timeout` is refused and the release expires. The approval that reaches `min_approvals` deploys it.
    """
    _show(_desk(project).approve(release, actor, comment), as_json)


def reject(
    release: ReleaseArgument,
    comment: CommentOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Reject a pending release (an approver, or the requester withdrawing it). It will never deploy."""
    _show(_desk(project).reject(release, actor, comment), as_json)


def rollback(
    stage: StageArgument,
    to: Annotated[int | None, typer.Option("--to", help="Release to go back to (default: the one before).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    actor: AsOption = None,
) -> None:
    """Redeploy the release that was live in STAGE before the current one (or --to RELEASE).

    Recorded as a release of its own (kind rollback). Only the stage's approvers may roll back a stage that
    has approvers; the build is verified again before it ships.
    """
    _show(_desk(project).rollback(stage, to, actor), as_json)


def _history_row(entry: HistoryEntry) -> list[str]:
    from conveyor.package.record import short_digest

    return [
        str(entry.release),
        entry.kind,
        _model(entry.model),
        short_digest(entry.build),
        _time(entry.live_from),
        _time(entry.live_until) if entry.live_until else "now",
        entry.requested_by,
        ", ".join(entry.approved_by) or "-",
    ]


def history(
    stage: StageArgument,
    at: Annotated[
        str | None, typer.Option("--at", help="Only what was live at this time (ISO 8601, e.g. 2026-05-01T12:00Z).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """What was live in STAGE and when: release, build, model, who requested and who approved."""
    if at:
        from conveyor.release.releases import parse_time

        parse_time(at)  # a bad time is refused before the ledger is opened
    entries = _desk(project).history(stage, at)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        say(f"nothing was live in {stage}" + (f" at {at}" if at else ""))
        return
    from rich.table import Table

    table = Table("release", "kind", "model", "build", "live from", "until", "requested by", "approved by")
    for entry in entries:
        table.add_row(*_history_row(entry))
    stdout.print(table)


@releases_app.command("list")
def list_releases(
    stage: Annotated[str | None, typer.Option("--stage", help="Only releases to this stage.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this status (pending, live...).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest releases: stage, status, build, who requested and approved."""
    views = _desk(project).list(stage, status)
    if as_json:
        emit_json([v.to_dict() for v in views])
        return
    if not views:
        say("no releases yet: conveyor release create BUILD --to STAGE")
        return
    from rich.table import Table

    from conveyor.package.record import short_digest

    table = Table("release", "stage", "status", "kind", "model", "build", "requested by", "approved by")
    for view in views:
        table.add_row(
            str(view.id), view.stage, view.status, view.kind, _model(view.model), short_digest(view.build),
            view.requested_by, ", ".join(view.approved_by) or "-",
        )  # fmt: skip
    stdout.print(table)


@releases_app.command("show")
def show_release(release: ReleaseArgument, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """One release: its build, approvals, deployment steps and where it went."""
    _show(_desk(project).show(release), as_json)


@audit_app.command("verify")
def audit_verify(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Check the whole hash chain; exit 1 naming the first edited or deleted entry."""
    from conveyor.errors import CheckFailed
    from conveyor.release import Ledger

    report = Ledger.open(load_project(project)).verify_audit()
    if as_json:
        emit_json(report.to_dict())
    if not report.ok:
        raise CheckFailed(
            f"audit log broken: {report.problem}",
            hint=f"The first bad entry is {report.first_bad}; the ledger was changed outside conveyor.",
        )
    if not as_json:
        say(f"audit log intact: {report.entries} entries, head {report.head[:16]}")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the last N entries.")] = 20,
    release: Annotated[int | None, typer.Option("--release", help="Only entries about this release.")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest audit entries: when, who, what."""
    from conveyor.release import Ledger

    entries = Ledger.open(load_project(project)).audit_entries(
        limit=limit, subject=f"release:{release}" if release is not None else None
    )
    rows = [
        {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject, "details": e.details}
        for e in entries
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        stdout.print(f"{row['seq']:>5} {_time(row['at'])} {row['actor']:<12} {row['action']:<20} {row['subject']}")


COMMANDS = {"approve": approve, "reject": reject, "rollback": rollback, "history": history}
GROUPS = {"release": release_app, "releases": releases_app, "audit": audit_app}
