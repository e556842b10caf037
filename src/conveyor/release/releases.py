"""Releases: create, promote, approve, reject, deploy, resume, roll back, and what was live when.

Every change is one database transaction that also appends to the audit log. Deployments run outside those
transactions; a release is claimed for deployment by a conditional update that only one process can win, and its
steps are recorded as they complete, so a deployment resumed after a crash never repeats a finished step.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from conveyor.config import Project
from conveyor.errors import CheckFailed, ConveyorError, NotFoundError
from conveyor.package.record import BuildRecord, find_build
from conveyor.release.actor import current_actor
from conveyor.release.ledger import Ledger, naive_utc
from conveyor.release.policy import PolicyRefused, ReleasePolicy
from conveyor.release.tables import ApprovalRow, BuildRow, DeploymentRow, DeploymentStepRow, ReleaseRow
from conveyor.release.targets import DeployContext, target_for
from conveyor.release.verification import verify_release_build
from conveyor.secrets.redaction import redact

PENDING, APPROVED, DEPLOYING, LIVE = "pending", "approved", "deploying", "live"
SUPERSEDED, FAILED, REJECTED, EXPIRED = "superseded", "failed", "rejected", "expired"
SYSTEM_ACTOR = "conveyor"


@dataclass
class ReleaseView:
    """A release as people and machines see it (`releases show --json`)."""

    id: int
    stage: str
    status: str
    kind: str
    target: str
    build: str
    build_path: str
    model: dict[str, Any]
    image_digest: str | None
    requested_by: str
    requested_at: datetime
    min_approvals: int
    expires_at: datetime | None
    source_release: int | None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    deployment: dict[str, Any] | None = None
    error: str | None = None

    @property
    def approved_by(self) -> list[str]:
        return [a["actor"] for a in self.approvals if a["decision"] == "approve"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["approved_by"] = self.approved_by
        return data


@dataclass
class HistoryEntry:
    """One stretch of time during which a release was live in a stage."""

    stage: str
    release: int
    kind: str
    build: str
    model: dict[str, Any]
    image_digest: str | None
    reference: str | None
    live_from: datetime
    live_until: datetime | None
    requested_by: str
    approved_by: list[str]
    deployed_by: str
    source_release: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(token: str) -> bool:
    """Whether the process named by a deployer token still runs (unknowable for another host: assumed yes)."""
    host, _, rest = token.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (`2026-05-01`, `2026-05-01T12:00`, `...Z`, `...+02:00`); naive means UTC."""
    try:
        return naive_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ConveyorError(
            f"time {text!r} is not understood", hint="Write ISO 8601, e.g. 2026-05-01T12:00Z."
        ) from None


def _require_passed(build: BuildRecord) -> None:
    """Refuse a build whose tests or gates did not run and pass."""
    tests, gates = build.tests, build.gates
    if not tests:
        raise CheckFailed(f"build {build.short} has not been tested", hint=f"Run: conveyor test {build.path}")
    if not tests.get("ok"):
        raise CheckFailed(
            f"build {build.short} failed its tests ({tests.get('failed', '?')} failed, "
            f"{tests.get('errors', '?')} errors)",
            hint="Only a build whose tests passed can be released; fix and rebuild.",
        )
    if not gates:
        raise CheckFailed(
            f"build {build.short} has not been through the gates", hint=f"Run: conveyor gate {build.path}"
        )
    if not gates.get("ok"):
        failed = [r.get("metric", "?") for r in gates.get("results", []) if not r.get("passed")]
        raise CheckFailed(
            f"build {build.short} failed its gates ({', '.join(failed) or 'see build.json'})",
            hint="Only a build that passed its quality gates can be released.",
        )


class Releases:
    """The release operations of one project against one ledger (the CLI and the Python API both use this)."""

    def __init__(self, project: Project, ledger: Ledger | None = None) -> None:
        self.project = project
        self.ledger = ledger or Ledger.open(project)

    # --- requests --------------------------------------------------------------------------------------------
    def create(self, build: str | os.PathLike[str] | BuildRecord, to: str, actor: str | None = None) -> ReleaseView:
        """Request `build` in stage `to`; deploys at once when the stage needs no approval."""
        record = build if isinstance(build, BuildRecord) else find_build(self.project.state_dir, build)
        return self._request(record, to, current_actor(actor), kind="release", source=None)

    def promote(self, release_id: int, to: str, actor: str | None = None) -> ReleaseView:
        """Request the build of a deployed release in the next stage (pending until approved, if approvals apply)."""
        with self.ledger.sessions() as session:
            source = self._release(session, release_id)
            deployment = self._deployment(session, release_id)
            build_row = session.get(BuildRow, source.build_id)
            assert build_row is not None
        if deployment is None or deployment.live_from is None:
            raise CheckFailed(
                f"release {release_id} was never deployed to {source.stage}, so it cannot be promoted",
                hint=f"Its status is {source.status}. Promote a release that went live.",
            )
        if source.stage == to:
            raise ConveyorError(f"release {release_id} is already a release to {to}", hint="Promote to the next stage.")
        return self._request(
            BuildRecord.load(Path(build_row.path)), to, current_actor(actor), kind="promotion", source=release_id
        )

    def _request(self, build: BuildRecord, stage: str, actor: str, *, kind: str, source: int | None) -> ReleaseView:
        policy = ReleasePolicy.of(self.project, stage)
        if build.project and build.project != self.project.name:
            raise ConveyorError(
                f"build {build.short} belongs to project {build.project!r}, not {self.project.name!r}",
                hint="Release it from its own project.",
            )
        _require_passed(build)
        verify_release_build(build)
        now = self.ledger.now()
        with self.ledger.transaction() as session:
            build_row = self._record_build(session, build, actor)
            for required in policy.config.requires:
                went_live = session.execute(
                    select(func.count(DeploymentRow.id))
                    .join(ReleaseRow, ReleaseRow.id == DeploymentRow.release_id)
                    .where(
                        DeploymentRow.stage == required,
                        ReleaseRow.build_id == build_row.id,
                        DeploymentRow.live_from.is_not(None),
                    )
                ).scalar_one()
                if not went_live:
                    raise PolicyRefused(
                        f"build {build.short} has not been deployed to {required}, which {stage} requires",
                        hint=f"Release it to {required} first: conveyor release create {build.path} --to {required}",
                    )
            needs = policy.needs_approval
            release = ReleaseRow(
                stage=stage,
                build_id=build_row.id,
                kind=kind,
                source_release_id=source,
                target=policy.config.target,
                status=PENDING if needs else APPROVED,
                requested_by=actor,
                requested_at=now,
                min_approvals=policy.config.min_approvals,
                expires_at=now + policy.timeout if needs else None,
                decided_at=None if needs else now,
            )
            session.add(release)
            session.flush()
            self.ledger.audit(
                session, actor, f"release.{kind}", f"release:{release.id}",
                stage=stage, build=build.digest, target=release.target, source_release=source,
                min_approvals=release.min_approvals, expires_at=release.expires_at,
            )  # fmt: skip
            if not needs:
                self.ledger.audit(session, actor, "release.approved", f"release:{release.id}", rule="min_approvals = 0")
            release_id = release.id
        if not needs:
            return self._deploy(release_id, actor, verified=True)
        return self.show(release_id)

    def _record_build(self, session: Session, build: BuildRecord, actor: str) -> BuildRow:
        row = session.execute(select(BuildRow).where(BuildRow.digest == build.digest)).scalar_one_or_none()
        record = json.dumps(build.data, sort_keys=True)
        if row is None:
            row = BuildRow(
                digest=build.digest,
                project=build.project or self.project.name,
                env=build.env,
                path=str(build.path),
                model_name=build.model.name if build.model else None,
                model_version=build.model.version if build.model else None,
                image_digest=build.image.digest if build.image else None,
                tests_ok=bool((build.tests or {}).get("ok")),
                gates_ok=bool((build.gates or {}).get("ok")),
                record=record,
                recorded_at=self.ledger.now(),
                recorded_by=actor,
            )
            session.add(row)
            session.flush()
            self.ledger.audit(session, actor, "build.recorded", f"build:{build.digest}", path=str(build.path))
        elif row.record != record or row.path != str(build.path):
            row.record, row.path = record, str(build.path)
            row.tests_ok, row.gates_ok = bool((build.tests or {}).get("ok")), bool((build.gates or {}).get("ok"))
            self.ledger.audit(session, actor, "build.updated", f"build:{build.digest}", path=str(build.path))
        return row

    # --- decisions -------------------------------------------------------------------------------------------
    def approve(self, release_id: int, actor: str | None = None, comment: str | None = None) -> ReleaseView:
        """Approve a pending release as a named approver; deploys it when enough approvals are in."""
        return self._decide(release_id, current_actor(actor), "approve", comment)

    def reject(self, release_id: int, actor: str | None = None, comment: str | None = None) -> ReleaseView:
        """Reject a pending release (an approver, or its requester withdrawing it); it will never deploy."""
        return self._decide(release_id, current_actor(actor), "reject", comment)

    def _decide(self, release_id: int, actor: str, decision: str, comment: str | None) -> ReleaseView:
        now = self.ledger.now()
        expired = won = False
        with self.ledger.transaction() as session:
            release = self._release(session, release_id, lock=True)
            policy = ReleasePolicy.of(self.project, release.stage)
            expires_at, stage = release.expires_at, release.stage
            if release.status != PENDING:
                raise CheckFailed(
                    f"release {release_id} is {release.status}; only a pending release can be {decision}d",
                    hint=f"See: conveyor releases show {release_id}",
                )
            if release.expires_at is not None and now > release.expires_at:
                release.status, release.decided_at = EXPIRED, now
                self.ledger.audit(
                    session, actor, "release.expired", f"release:{release_id}",
                    expires_at=release.expires_at, attempted=decision,
                )  # fmt: skip
                expired = True
            else:
                if decision == "approve":
                    policy.check_approver(actor, release.requested_by)
                elif actor not in policy.config.approvers and actor != release.requested_by:
                    raise PolicyRefused(
                        f"{actor} may not reject release {release_id}: only approvers of {release.stage} or its "
                        "requester may",
                        hint=f"Approvers of {release.stage}: {', '.join(policy.config.approvers) or 'none'}.",
                    )
                earlier = session.execute(
                    select(ApprovalRow).where(ApprovalRow.release_id == release_id, ApprovalRow.actor == actor)
                ).scalar_one_or_none()
                if earlier is not None:
                    raise PolicyRefused(f"{actor} already decided on release {release_id} ({earlier.decision}d)")
                session.add(ApprovalRow(release_id=release_id, actor=actor, decision=decision, comment=comment, at=now))
                session.flush()
                self.ledger.audit(session, actor, f"approval.{decision}", f"release:{release_id}", comment=comment)
                if decision == "reject":
                    self._transition(session, release_id, PENDING, REJECTED, decided_at=now)
                    self.ledger.audit(session, actor, "release.rejected", f"release:{release_id}")
                else:
                    count = session.execute(
                        select(func.count(ApprovalRow.id)).where(
                            ApprovalRow.release_id == release_id, ApprovalRow.decision == "approve"
                        )
                    ).scalar_one()
                    if count >= release.min_approvals:
                        won = self._transition(session, release_id, PENDING, APPROVED, decided_at=now)
                        if won:
                            self.ledger.audit(
                                session, actor, "release.approved", f"release:{release_id}", approvals=count
                            )
        if expired:
            raise CheckFailed(
                f"release {release_id} expired at {expires_at:%Y-%m-%d %H:%M} UTC and can no longer be {decision}d",
                hint=f"Its approval window (release.{stage}.timeout = {policy.config.timeout}) has passed; "
                f"request it again with conveyor release promote or create.",
            )
        if won:
            return self.deploy(release_id, actor)
        return self.show(release_id)

    def _transition(self, session: Session, release_id: int, old: str, new: str, **values: Any) -> bool:
        """`UPDATE releases SET status = new WHERE id = … AND status = old`: True only for the one that wins."""
        result = session.execute(
            update(ReleaseRow)
            .where(ReleaseRow.id == release_id, ReleaseRow.status == old)
            .values(status=new, **values)
            .execution_options(synchronize_session=False)
        )
        session.expire_all()
        return result.rowcount == 1

    # --- deployment ------------------------------------------------------------------------------------------
    def deploy(
        self, release_id: int, actor: str | None = None, *, resume: bool = False, force: bool = False
    ) -> ReleaseView:
        """Deploy an approved release (or, with `resume`, finish a deployment that stopped half-way)."""
        return self._deploy(release_id, actor, resume=resume, force=force)

    def _deploy(
        self, release_id: int, actor: str | None, *, resume: bool = False, force: bool = False, verified: bool = False
    ) -> ReleaseView:
        """`deploy`; `verified` when the caller has just verified the build, so it is not hashed twice."""
        actor = current_actor(actor)
        token = _owner_token()
        deployment_id, build, stage, target_url = self._claim(release_id, actor, token, resume=resume, force=force)
        target = target_for(target_url)
        done: dict[str, dict[str, Any]] = {}
        with self.ledger.sessions() as session:
            for step in session.execute(
                select(DeploymentStepRow).where(DeploymentStepRow.deployment_id == deployment_id)
            ).scalars():
                done[step.name] = json.loads(step.detail)
        context = DeployContext(self.project.name, self.project.state_dir, stage, release_id, build, done)
        try:
            if not verified:
                verify_release_build(build)
            for name in [*target.steps(), "alias"]:
                if name in done:
                    continue
                detail = self._set_alias(context) if name == "alias" else target.run_step(name, context)
                done[name] = detail
                self._record_step(deployment_id, release_id, actor, token, name, detail)
        except (ConveyorError, OSError) as exc:
            self._fail(release_id, deployment_id, actor, token, exc)
            if isinstance(exc, ConveyorError):
                raise
            raise CheckFailed(f"deployment of release {release_id} failed: {exc}") from exc
        self._go_live(release_id, deployment_id, stage, actor, token)
        return self.show(release_id)

    def resume(self, release_id: int, actor: str | None = None, *, force: bool = False) -> ReleaseView:
        """Finish a deployment that was killed or failed half-way; finished steps are not repeated."""
        return self.deploy(release_id, actor, resume=True, force=force)

    def _claim(
        self, release_id: int, actor: str, token: str, *, resume: bool, force: bool
    ) -> tuple[int, BuildRecord, str, str]:
        now = self.ledger.now()
        with self.ledger.transaction() as session:
            release = self._release(session, release_id, lock=True)
            status, owner = release.status, release.deployer
            if status in (LIVE, SUPERSEDED):
                raise CheckFailed(f"release {release_id} was already deployed ({status}); it is never deployed twice")
            allowed = status == APPROVED or (resume and status == FAILED)
            if resume and status == DEPLOYING:
                if owner and _owner_alive(owner) and not force:
                    raise CheckFailed(
                        f"release {release_id} is being deployed right now by {owner.rsplit(':', 1)[0]}",
                        hint="Wait for it; if that process is gone (another machine), resume with --force.",
                    )
                allowed = True
            if not allowed:
                hint = (
                    f"Resume it with: conveyor release resume {release_id}" if status in (DEPLOYING, FAILED) else None
                )
                raise CheckFailed(f"release {release_id} is {status} and cannot be deployed now", hint=hint)
            same_owner = ReleaseRow.deployer.is_(None) if owner is None else ReleaseRow.deployer == owner
            claimed = session.execute(
                update(ReleaseRow)
                .where(ReleaseRow.id == release_id, ReleaseRow.status == status, same_owner)
                .values(status=DEPLOYING, deployer=token, error=None)
                .execution_options(synchronize_session=False)
            ).rowcount  # fmt: skip
            if claimed != 1:
                raise CheckFailed(f"release {release_id} was claimed by another deployment at the same moment")
            deployment = self._deployment(session, release_id)
            if deployment is None:
                deployment = DeploymentRow(
                    release_id=release_id, stage=release.stage, target=release.target, status="running",
                    started_at=now, started_by=actor,
                )  # fmt: skip
                session.add(deployment)
                session.flush()
                self.ledger.audit(session, actor, "deployment.started", f"release:{release_id}", target=release.target)
            else:
                deployment.status, deployment.error = "running", None
                self.ledger.audit(
                    session, actor, "deployment.resumed", f"release:{release_id}", previous_status=status,
                    previous_owner=owner,
                )  # fmt: skip
            build_row = session.get(BuildRow, release.build_id)
            assert build_row is not None
            return deployment.id, BuildRecord.load(Path(build_row.path)), release.stage, release.target

    def _record_step(
        self, deployment_id: int, release_id: int, actor: str, token: str, name: str, detail: dict[str, Any]
    ) -> None:
        with self.ledger.transaction() as session:
            self._still_owner(session, release_id, token)
            session.add(
                DeploymentStepRow(
                    deployment_id=deployment_id, name=name, at=self.ledger.now(), detail=json.dumps(detail, default=str)
                )
            )
            deployment = session.get(DeploymentRow, deployment_id)
            assert deployment is not None
            if detail.get("reference"):
                deployment.reference = str(detail["reference"])
            if detail.get("handle") or detail.get("container"):
                deployment.handle = str(detail.get("container") or detail.get("handle"))
            if name == "alias" and detail.get("alias"):
                deployment.alias = f"{detail['env']}:{detail['name']}@{detail['alias']} = {detail['version']}"
            self.ledger.audit(session, actor, "deployment.step", f"release:{release_id}", step=name, detail=detail)

    def _still_owner(self, session: Session, release_id: int, token: str) -> None:
        release = self._release(session, release_id, lock=True)
        if release.status != DEPLOYING or release.deployer != token:
            raise CheckFailed(f"release {release_id} was taken over by another deployment; this one stops")

    def _set_alias(self, context: DeployContext) -> dict[str, Any]:
        """Point the stage's alias (e.g. `prod`) at the model version, in the registry the build was made from."""
        model, env = context.build.model, context.build.env
        if model is None or not env:
            return {"skipped": "the build names no registered model"}
        from conveyor.registry import ModelRegistry

        ModelRegistry(self.project.environment(env)).set_alias(model.name, context.stage, model.version)
        return {"env": env, "name": model.name, "version": model.version, "alias": context.stage}

    def _fail(self, release_id: int, deployment_id: int, actor: str, token: str, error: BaseException) -> None:
        message = redact(str(error).splitlines()[0]) if str(error) else type(error).__name__
        with self.ledger.transaction() as session:
            release = self._release(session, release_id, lock=True)
            if release.deployer != token:
                return
            release.status, release.error, release.deployer = FAILED, message, None
            deployment = session.get(DeploymentRow, deployment_id)
            assert deployment is not None
            deployment.status, deployment.error, deployment.finished_at = FAILED, message, self.ledger.now()
            self.ledger.audit(session, actor, "deployment.failed", f"release:{release_id}", error=message)

    def _go_live(self, release_id: int, deployment_id: int, stage: str, actor: str, token: str) -> None:
        now = self.ledger.now()
        with self.ledger.transaction() as session:
            self.ledger.serialize(session)  # one stage change at a time: exactly one release is live per stage
            self._still_owner(session, release_id, token)
            previous = session.execute(
                select(DeploymentRow).where(DeploymentRow.stage == stage, DeploymentRow.status == LIVE)
            ).scalars()
            replaced = []
            for old in previous:
                old.status, old.live_until = SUPERSEDED, now
                session.execute(
                    update(ReleaseRow)
                    .where(ReleaseRow.id == old.release_id, ReleaseRow.status == LIVE)
                    .values(status=SUPERSEDED)
                    .execution_options(synchronize_session=False)
                )
                replaced.append(old.release_id)
            deployment = session.get(DeploymentRow, deployment_id)
            assert deployment is not None
            deployment.status, deployment.live_from, deployment.finished_at = LIVE, now, now
            session.execute(
                update(ReleaseRow)
                .where(ReleaseRow.id == release_id)
                .values(status=LIVE, deployer=None)
                .execution_options(synchronize_session=False)
            )
            self.ledger.audit(
                session, actor, "release.live", f"release:{release_id}", stage=stage, replaced=replaced,
                reference=deployment.reference,
            )  # fmt: skip

    # --- rollback --------------------------------------------------------------------------------------------
    def rollback(self, stage: str, to: int | None = None, actor: str | None = None) -> ReleaseView:
        """Redeploy the release live in `stage` before the current one (or release `to`), as a new release."""
        actor = current_actor(actor)
        policy = ReleasePolicy.of(self.project, stage)
        policy.check_may_roll_back(actor)
        now = self.ledger.now()
        with self.ledger.transaction() as session:
            went_live = list(
                session.execute(
                    select(DeploymentRow)
                    .where(DeploymentRow.stage == stage, DeploymentRow.live_from.is_not(None))
                    .order_by(DeploymentRow.live_from.desc(), DeploymentRow.id.desc())
                ).scalars()
            )
            current = next((d for d in went_live if d.status == LIVE), None)
            if to is None:
                earlier = [d for d in went_live if current is None or d.live_from < current.live_from]  # type: ignore[operator]
                if not earlier:
                    raise CheckFailed(
                        f"nothing to roll back to in {stage}: no release was live there before the current one"
                    )
                chosen = earlier[0]
            else:
                found = [d for d in went_live if d.release_id == to]
                if not found:
                    raise CheckFailed(
                        f"release {to} was never live in {stage}, so {stage} cannot roll back to it",
                        hint=f"See what was: conveyor history {stage}",
                    )
                chosen = found[0]
            if current is not None and chosen.release_id == current.release_id:
                raise CheckFailed(f"release {to} is the one live in {stage} now")
            source = self._release(session, chosen.release_id)
            release = ReleaseRow(
                stage=stage, build_id=source.build_id, kind="rollback", source_release_id=source.id,
                target=policy.config.target, status=APPROVED, requested_by=actor, requested_at=now, min_approvals=0,
                expires_at=None, decided_at=now,
            )  # fmt: skip
            session.add(release)
            session.flush()
            self.ledger.audit(
                session, actor, "release.rollback", f"release:{release.id}", stage=stage, to_release=source.id,
                from_release=current.release_id if current else None,
            )  # fmt: skip
            release_id = release.id
        return self.deploy(release_id, actor)

    # --- reading ---------------------------------------------------------------------------------------------
    def show(self, release_id: int) -> ReleaseView:
        with self.ledger.sessions() as session:
            return self._view(session, self._release(session, release_id))

    def list(self, stage: str | None = None, status: str | None = None, limit: int = 50) -> list[ReleaseView]:
        with self.ledger.sessions() as session:
            query = select(ReleaseRow).order_by(ReleaseRow.id.desc()).limit(limit)
            if stage:
                query = query.where(ReleaseRow.stage == stage)
            views = [self._view(session, r) for r in session.execute(query).scalars()]
        return [v for v in views if status is None or v.status == status]

    def history(self, stage: str, at: datetime | str | None = None) -> list[HistoryEntry]:
        """What was live in `stage`, oldest first; with `at`, only what was live at that moment."""
        moment = parse_time(at) if isinstance(at, str) else (naive_utc(at) if at else None)
        with self.ledger.sessions() as session:
            query = (
                select(DeploymentRow)
                .where(DeploymentRow.stage == stage, DeploymentRow.live_from.is_not(None))
                .order_by(DeploymentRow.live_from, DeploymentRow.id)
            )
            if moment is not None:
                query = query.where(DeploymentRow.live_from <= moment).where(
                    (DeploymentRow.live_until.is_(None)) | (DeploymentRow.live_until > moment)
                )
            entries = []
            for deployment in session.execute(query).scalars():
                view = self._view(session, self._release(session, deployment.release_id))
                assert deployment.live_from is not None
                entries.append(
                    HistoryEntry(
                        stage=stage, release=view.id, kind=view.kind, build=view.build, model=view.model,
                        image_digest=view.image_digest, reference=deployment.reference,
                        live_from=deployment.live_from, live_until=deployment.live_until,
                        requested_by=view.requested_by, approved_by=view.approved_by,
                        deployed_by=deployment.started_by, source_release=view.source_release,
                    )
                )  # fmt: skip
        return entries

    def _release(self, session: Session, release_id: int, *, lock: bool = False) -> ReleaseRow:
        query = select(ReleaseRow).where(ReleaseRow.id == release_id)
        if lock:
            query = query.with_for_update()
        release = session.execute(query).scalar_one_or_none()
        if release is None:
            raise NotFoundError(f"release {release_id} does not exist", hint="List releases: conveyor releases list")
        return release

    def _deployment(self, session: Session, release_id: int) -> DeploymentRow | None:
        return session.execute(select(DeploymentRow).where(DeploymentRow.release_id == release_id)).scalar_one_or_none()

    def _view(self, session: Session, release: ReleaseRow) -> ReleaseView:
        build = session.get(BuildRow, release.build_id)
        assert build is not None
        approvals = [
            {"actor": a.actor, "decision": a.decision, "comment": a.comment, "at": a.at}
            for a in session.execute(
                select(ApprovalRow).where(ApprovalRow.release_id == release.id).order_by(ApprovalRow.id)
            ).scalars()
        ]
        deployment = self._deployment(session, release.id)
        deployed = None
        if deployment is not None:
            steps = session.execute(
                select(DeploymentStepRow.name)
                .where(DeploymentStepRow.deployment_id == deployment.id)
                .order_by(DeploymentStepRow.id)
            ).scalars()
            deployed = {
                "status": deployment.status, "started_at": deployment.started_at, "started_by": deployment.started_by,
                "finished_at": deployment.finished_at, "live_from": deployment.live_from,
                "live_until": deployment.live_until, "reference": deployment.reference, "handle": deployment.handle,
                "alias": deployment.alias, "steps": list(steps), "error": deployment.error,
            }  # fmt: skip
        status = release.status
        if status == PENDING and release.expires_at is not None and self.ledger.now() > release.expires_at:
            status = EXPIRED
        return ReleaseView(
            id=release.id, stage=release.stage, status=status, kind=release.kind, target=release.target,
            build=build.digest, build_path=build.path,
            model={"name": build.model_name, "version": build.model_version, "env": build.env},
            image_digest=build.image_digest, requested_by=release.requested_by, requested_at=release.requested_at,
            min_approvals=release.min_approvals, expires_at=release.expires_at,
            source_release=release.source_release_id, approvals=approvals, deployment=deployed, error=release.error,
        )  # fmt: skip
