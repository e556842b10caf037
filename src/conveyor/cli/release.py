"""`conveyor release`, `approve`, `reject`, `rollback`, `releases`, `history`, `audit`: gated, signed releases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import release_text as text
from conveyor.cli.options import JsonOption, KeyOption, ProjectOption
from conveyor.cli.output import emit_json, say, stdout
from conveyor.config import TARGETS, load_project
from conveyor.secrets import redact

if TYPE_CHECKING:  # the release room (SQLAlchemy) is imported only by the commands that use it
    from conveyor.config import Project
    from conveyor.release import PolicyStatus, ReleaseView

KEYS_HELP = (
    "**Who acts is whoever's key signs.** Every request, approval, rejection and deployment step is an event "
    "signed with an SSH key (OpenSSH's sshsig, namespace `conveyor`) and chained to the event before it. The "
    "signer's name is the principal that `allowed_signers` (beside conveyor.toml, `[trust] allowed_signers`) lists "
    "for the key, never a name typed on the command line. The key comes from `--key PATH`, else "
    "`$CONVEYOR_SIGNING_KEY` (a path, or the private key text as a CI secret store hands it over), else git's "
    "`user.signingkey` (with `gpg.format = ssh`); a key held by ssh-agent works (give its .pub).\n\n"
    "Set up once: `ssh-keygen -t ed25519 -f ~/.ssh/conveyor`, add `NAME $(cat ~/.ssh/conveyor.pub)` to "
    "allowed_signers, commit it, then `export CONVEYOR_SIGNING_KEY=~/.ssh/conveyor`."
)
AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Only a check: refuse unless the signing key is this principal's (it never chooses who acts).",
        show_default=False,
    ),
]
AdoptOption = Annotated[
    str | None,
    typer.Option(
        "--adopt",
        help="The commit (full hash or at least 7 hex digits) whose conveyor.toml and allowed_signers a ledger "
        "with no policy yet may adopt; required in CI (CI=true), else $CONVEYOR_ADOPT. Outside git: the policy "
        "digest.",
        show_default=False,
    ),
]
CommentOption = Annotated[str | None, typer.Option("--comment", "-m", help="Why: signed with the decision.")]
ReleaseArgument = Annotated[int, typer.Argument(help="Release number (see `conveyor releases list`).")]
CanaryOption = Annotated[
    int | None,
    typer.Option(
        "--canary",
        help="Roll out beside the live release: it answers this % of requests (1-99; `X-Conveyor-Key` keeps a "
        "caller on one version), until `conveyor release rollout N --weight/--complete/--abort`.",
        show_default=False,
    ),
]
ShadowOption = Annotated[
    bool,
    typer.Option(
        "--shadow",
        help="Roll out as a shadow: every request is also sent to it; its answers are compared and counted, never "
        "returned.",
    ),
]
StageArgument = Annotated[str, typer.Argument(help="Stage name, a [release.STAGE] of conveyor.toml (qa, prod...).")]


def _targets_help() -> str:
    return "\n".join(f"- `{kind.form}`: {kind.summary}." for kind in TARGETS.values())


release_app = typer.Typer(
    help="Put a tested, attested build into a stage (qa, prod...) under the stage's policy.\n\n"
    "Stages are the `[release.STAGE]` sections of conveyor.toml: `target`, `env` (whose MLflow registry gets the "
    "alias named after the stage, e.g. `prod`: the champion the quality gates compare with), `approvers`, "
    "`min_approvals`, `requester_may_approve`, `timeout`, `requires` and `break_glass`. Targets:\n\n"
    f"{_targets_help()}\n\n"
    "A build is accepted only with valid provenance and passing test and gate attestations signed by a "
    "`[trust] builders` principal; the request records their digests and the image's manifest digest, and the "
    "deployment ships exactly that digest (build.json is never trusted at deploy time).\n\n"
    "The ledger holds the policy in force: the first request adopts the project's committed one, printing what "
    "it adopts (signers and their SHA256 key fingerprints, approvers, the commit); in CI (`CI=true`) only with "
    "`--adopt COMMIT` or `$CONVEYOR_ADOPT` naming that commit. Each request records its "
    "stage's policy, and approvals count only against it. A changed conveyor.toml or allowed_signers takes force "
    "only once the approvers of the policy in force approve it (`conveyor release policy`).\n\n"
    f"{KEYS_HELP}\n\n"
    "```\n"
    "conveyor release create 3f9a2c --to qa         # signed request; qa needs no approval: deployed now\n"
    "conveyor release promote 1 --to prod           # pending under prod's recorded policy\n"
    "conveyor approve 2 --key ~/.ssh/alice -m 'ok'  # a signed approval; deployed once enough are in\n"
    "conveyor history prod                          # what was live when, verified signers, attestations\n"
    "conveyor rollback prod                         # the release before, requested again (needs approvals)\n"
    "conveyor audit verify                          # re-verify every signature; names the first bad event\n"
    "```",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
releases_app = typer.Typer(help="Look at releases: list them or show one (with signers and attestations).")
policy_app = typer.Typer(
    help="The release policy the ledger holds in force, and changing it.\n\n"
    "The ledger adopts the project's policy (every `[release.STAGE]`, `[trust] builders`, and the keys of "
    "allowed_signers with their validity windows, and the `[gates]` rules, `eval_data` and `secrets`) on its first "
    "request. A change, of conveyor.toml or allowed_signers, is proposed (signed) and takes force once approved "
    "under the policy in force:\n\n"
    "- **who approves**: the approvers of every stage that names approvers, never the proposer;\n"
    "- **how many**: each stage's own `min_approvals` from its own approvers, and in all at least the "
    "`min_approvals` of the strictest stage (at least one). With no approvers named anywhere, a proposal takes "
    "force at once.\n\n"
    "A copied or edited project file changes nothing by itself: requests and gate results under any other policy "
    "are refused.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
release_app.add_typer(policy_app, name="policy")
audit_app = typer.Typer(
    help="The ledger's events: every request, approval, rejection and deployment step, signed by its actor and "
    "chained to the one before.",
    no_args_is_help=True,
)


def _project(project: Path | None) -> Project:
    return load_project(project)


def _show(view: ReleaseView, as_json: bool) -> None:
    if as_json:
        emit_json(view.to_dict())
    else:
        stdout.print(redact(text.describe(view)))


@release_app.command("create")
def create(
    to: Annotated[str, typer.Option("--to", help="Stage to release into, e.g. qa.")],
    build: Annotated[
        str | None,
        typer.Argument(
            help="A build.json path or folder, or the package digest (a unique prefix is enough); "
            "default: the latest build."
        ),
    ] = None,
    key: KeyOption = None,
    actor: AsOption = None,
    adopt: AdoptOption = None,
    canary: CanaryOption = None,
    shadow: ShadowOption = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a build in a stage; signs the request (build, image digest, attestations, the stage's policy).

    Refused unless the build's provenance, test and gate attestations verify and are signed by a builder of the
    policy in force. Deploys at once when the stage needs no approval; otherwise it waits for `conveyor approve`.
    A stage that `requires` others takes only builds that went live there.
    """
    from conveyor.release import create_release

    view = create_release(
        _project(project), build, to, key=key, expect=actor, adopt=adopt, canary=canary, shadow=shadow
    )
    _show(view, as_json)


@release_app.command("promote")
def promote(
    release: ReleaseArgument,
    to: Annotated[str, typer.Option("--to", help="Stage to promote into, e.g. prod.")],
    key: KeyOption = None,
    actor: AsOption = None,
    canary: CanaryOption = None,
    shadow: ShadowOption = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request the build of a release that went live in the next stage; signs the request (pending until
    approved, if the stage's policy asks for approvals).

    With `--canary 10` or `--shadow`, it rolls out beside the release live there instead of replacing it (a
    local:// stage's forwarder splits the requests). `conveyor rollout status STAGE` shows both side by side;
    `conveyor release rollout N --weight 50` (approved like a promotion), `--complete` or `--abort` go on.
    """
    from conveyor.release import promote as promote_release

    view = promote_release(_project(project), release, to, key=key, expect=actor, canary=canary, shadow=shadow)
    _show(view, as_json)


@release_app.command("rollout")
def rollout(
    release: ReleaseArgument,
    weight: Annotated[
        int | None,
        typer.Option("--weight", help="The % of requests (0-100) the candidate answers.", show_default=False),
    ] = None,
    complete: Annotated[
        bool, typer.Option("--complete", help="Make the candidate the stage's live release (the old one stops).")
    ] = False,
    abort: Annotated[
        bool,
        typer.Option("--abort", help="Stop the candidate; the live release answers everything again (no approval)."),
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why: signed with the change.")] = None,
    key: KeyOption = None,
    actor: AsOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a running rollout: a new weight, its completion, or its abort; each a signed ledger event.

    A weight or the completion takes effect once the stage's approvers approved it (`conveyor approve N`, as
    for a promotion; at once in a stage without approvers). An abort needs no approval: it only goes back to
    what was approved, and may be signed by the rollout's requester, the stage's approvers and break_glass
    principals, or a `[trust] watchers` principal (`conveyor rollout watch`).
    """
    from conveyor.release import change_rollout

    view = change_rollout(
        _project(project),
        release,
        weight=weight,
        complete=complete,
        abort=abort,
        reason=reason,
        key=key,
        expect=actor,
    )
    _show(view, as_json)


@release_app.command("deploy")
def deploy(
    release: ReleaseArgument, key: KeyOption = None, project: ProjectOption = None, as_json: JsonOption = False
) -> None:
    """Deploy a release the ledger holds as approved: its approvers' signed approvals reached the count of the
    policy recorded with it (refused, exit 1, naming how many are missing, otherwise). Each step is signed by your
    key. This is what CI's prod job runs after its environment's review; `conveyor approve --no-deploy` signs an
    approval that leaves the deployment to it.
    """
    from conveyor.release import deploy_release

    _show(deploy_release(_project(project), release, key=key), as_json)


@release_app.command("resume")
def resume(
    release: ReleaseArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Take over from a deployer on another machine that is known to be gone.")
    ] = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finish a deployment that was killed or failed half-way; signs the claim and each remaining step.

    Finished steps are not repeated, and the release is refused if its signed events do not verify.
    """
    from conveyor.release import resume as resume_release

    _show(resume_release(_project(project), release, key=key, force=force), as_json)


@release_app.command("stop")
def stop(
    stage: StageArgument,
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why: signed with the stop.")] = None,
    key: KeyOption = None,
    actor: AsOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take down what is live in STAGE: a signed `stage.stopped` event (who, when, why), then the stage's alias
    leaves its registry and a local:// stage's forwarder and servers stop.

    A stage with approvers is stopped only by one of them or a break_glass principal. `history STAGE --at T`
    shows the stage as stopped from then on; a release (or `rollback STAGE`, which brings the stopped one back)
    makes it live again. With nothing live, only the local processes are stopped and nothing is signed.
    """
    from conveyor.release import stop_stage

    report = stop_stage(_project(project), stage, key=key, expect=actor, reason=reason)
    if as_json:
        emit_json(report.to_dict())
        return
    for line in text.stop_lines(report):
        say(line)


def _show_policy(status: PolicyStatus, as_json: bool) -> None:
    if as_json:
        emit_json(status.to_dict())
        return
    for line in text.policy_lines(status):
        say(line)


@policy_app.command("show")
def policy_show(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """The policy in force in the ledger, how the project file differs, and open proposals."""
    from conveyor.release import policy_status

    _show_policy(policy_status(_project(project)), as_json)


@policy_app.command("propose")
def policy_propose(
    key: KeyOption = None,
    actor: AsOption = None,
    adopt: AdoptOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose the project file's policy (conveyor.toml's [release.*], [trust] builders, allowed_signers); signs
    the proposal. It takes force once the approvers of the policy in force approve it."""
    from conveyor.release import propose_policy

    _show_policy(propose_policy(_project(project), key=key, expect=actor, adopt=adopt), as_json)


@policy_app.command("approve")
def policy_approve(
    proposal: Annotated[int, typer.Argument(help="The proposal's number (see `conveyor release policy show`).")],
    key: KeyOption = None,
    actor: AsOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a proposed policy with an approver's key; the approval that completes the count adopts it."""
    from conveyor.release import approve_policy

    _show_policy(approve_policy(_project(project), proposal, key=key, expect=actor), as_json)


def approve(
    release: ReleaseArgument,
    comment: CommentOption = None,
    key: KeyOption = None,
    actor: AsOption = None,
    no_deploy: Annotated[
        bool,
        typer.Option(
            "--no-deploy",
            help="Sign only: the release stays approved until `conveyor release deploy N` (e.g. CI's prod job, "
            "after its environment's review).",
        ),
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a pending release: signs an approval with your key.

    It counts only if your principal is an approver in the policy recorded with the release (not the file you
    have now), is not the requester (unless `requester_may_approve`), and the approval window has not closed.
    The approval that reaches `min_approvals` deploys the release, its steps signed by your key (with
    `--no-deploy`, it leaves the deployment to `conveyor release deploy`).
    """
    from conveyor.release import approve as approve_release

    view = approve_release(_project(project), release, key=key, comment=comment, expect=actor, deploy_now=not no_deploy)
    _show(view, as_json)


def reject(
    release: ReleaseArgument,
    comment: CommentOption = None,
    key: KeyOption = None,
    actor: AsOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending release (an approver, or the requester withdrawing it): signs a rejection. It never
    deploys."""
    from conveyor.release import reject as reject_release

    _show(reject_release(_project(project), release, key=key, comment=comment, expect=actor), as_json)


def rollback(
    stage: StageArgument,
    to: Annotated[int | None, typer.Option("--to", help="Release to go back to (default: the one before).")] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass", help="Deploy without approvals: only for the stage's break_glass principals; marked so."
        ),
    ] = False,
    key: KeyOption = None,
    actor: AsOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request the release that was live in STAGE before the current one (or --to RELEASE) again; signs it.

    A rollback is a release: it needs the stage's approvals like any other, unless a `break_glass` principal of
    the stage asks with --break-glass (deployed at once, and marked break glass in history and audit).
    """
    from conveyor.release import rollback as rollback_stage

    view = rollback_stage(_project(project), stage, to=to, key=key, break_glass=break_glass, expect=actor)
    _show(view, as_json)


def history(
    stage: StageArgument,
    at: Annotated[
        str | None, typer.Option("--at", help="Only what was live at this time (ISO 8601, e.g. 2026-05-01T12:00Z).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """What was live in STAGE and when: build, image, who requested and approved, the verified signers and the
    attestation digests of each release (or why the ledger does not verify)."""
    from conveyor.release import history as stage_history
    from conveyor.release import parse_time, read_snapshot

    if at:
        parse_time(at)  # a bad time is refused before the ledger is opened
    entries = stage_history(_project(project), stage, at=at)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        stopped = read_snapshot(_project(project)).stopped(stage, parse_time(at)) if at else None
        if at and stopped is not None:
            say(text.stopped_line(stage, at, stopped))
            return
        say(f"nothing was live in {stage}" + (f" at {at}" if at else ""))
        return
    stdout.print(redact("\n\n".join(text.history_block(entry) for entry in entries)))
    verification = entries[0].verification
    if verification.ok:
        say("every event verified: signatures, chain and recorded policies")
    else:
        say(f"the ledger does not verify: {verification.problem}", style="bold red")


@releases_app.command("list")
def list_releases(
    stage: Annotated[str | None, typer.Option("--stage", help="Only releases to this stage.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only this status (pending, live...).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest releases: stage, status, build, who requested and approved."""
    from conveyor.release import list_releases as newest

    views = newest(_project(project), stage=stage, status=status)
    if as_json:
        emit_json([v.to_dict() for v in views])
        return
    if not views:
        say("no releases yet: conveyor release create BUILD --to STAGE")
        return
    from rich.table import Table

    table = Table("release", "stage", "status", "kind", "model", "build", "requested by", "approved by")
    for view in views:
        table.add_row(
            str(view.id),
            view.stage,
            str(view.status),
            str(view.kind),
            view.model.label(),
            text.short(view.build),
            view.requested_by,
            ", ".join(view.approved_by) or "-",
        )
    stdout.print(table)
    if not views[0].verification.ok:
        say(f"the ledger does not verify: {views[0].verification.problem}", style="bold red")


@releases_app.command("show")
def show_release(release: ReleaseArgument, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """One release: its build and image digest, attestations, recorded policy, signed decisions and deployment."""
    from conveyor.release import show_release as show

    _show(show(_project(project), release), as_json)


@audit_app.command("verify")
def audit_verify(
    project: ProjectOption = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="SEQ:HASH",
            envvar="CONVEYOR_LEDGER_CHECKPOINT",
            help="A checkpoint this command printed earlier, kept outside the ledger: it must still be there.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-verify every event: its place in the chain, its hash, its signature by a key of the policy in force,
    and the rules (recorded policy, approvals, deployment steps). Exit 1 naming the first bad event.

    Signatures cannot show events cut off the end of the ledger, or a ledger swapped for an older copy: publish
    the checkpoint printed here (a CI log, a release note) and pass it back with --expect SEQ:HASH.
    """
    from conveyor.errors import CheckFailed
    from conveyor.release import verify_ledger

    report = verify_ledger(_project(project), expect=expect)
    if as_json:
        emit_json(report.to_dict())
    if not report.ok:
        hint = "The ledger was changed outside conveyor; nothing after the first bad event is trusted, and no "
        hint += "deployment proceeds until it is restored from a backup."
        if report.edited_rows and not report.problem:
            hint = "The releases table was edited; the signed events are intact. Rewrite it: conveyor audit rebuild"
        raise CheckFailed(f"ledger does not verify: {report.trouble}", hint=hint)
    if not as_json:
        for line in text.verify_lines(report):
            say(line)


@audit_app.command("rebuild")
def audit_rebuild(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Rewrite the releases table (a query aid derived from the events) from the verified events."""
    from conveyor.release import rebuild_releases_table

    rows = rebuild_releases_table(_project(project))
    if as_json:
        emit_json({"rows": rows})
    else:
        say(f"releases table rewritten from the signed events: {rows} rows")


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the last N events.")] = 20,
    release: Annotated[int | None, typer.Option("--release", help="Only events of this release.")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest events: when, who signed (principal and key), what. `audit verify` checks them."""
    from conveyor.release import audit_entries

    entries = audit_entries(_project(project), limit=limit, release=release)
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    for entry in entries:
        for line in text.audit_lines(entry):
            stdout.print(line)


COMMANDS = {"approve": approve, "reject": reject, "rollback": rollback, "history": history}
GROUPS = {"release": release_app, "releases": releases_app, "audit": audit_app}
