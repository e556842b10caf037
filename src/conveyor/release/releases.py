"""Releases: request, promote, approve, reject, roll back, deploy, resume; and what was live when.

Every change is a signed event appended to the ledger by `Ledger.writing`, which verifies the chain and folds it
first; the rules live in `LedgerState.apply`, so a request, an approval or a claim is refused here exactly when a
verifier would refuse the same event later. Deployments run outside those transactions (see `deployment`).
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConfigError, ConveyorError, NotFoundError
from conveyor.package.record import find_build
from conveyor.release.acting import KeyChoice, acting_identity, require_in_force
from conveyor.release.adoption import require_named
from conveyor.release.attested import attested_shipment
from conveyor.release.deployment import deploy
from conveyor.release.ledger import Ledger, LedgerBroken, Writer, naive_utc
from conveyor.release.policy import PolicyRefused, PolicySet, require_committed
from conveyor.release.shipment import Shipment
from conveyor.release.status import EventKind, ReleaseKind, ReleaseStatus, RolloutMode
from conveyor.release.views import HistoryEntry, LedgerSnapshot, ReleaseView, Verification, release_view

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Project
    from conveyor.release.events import SignedEvent
    from conveyor.release.shipment import Shipment
    from conveyor.release.state import LedgerState, PolicyProposal, ReleaseState
    from conveyor.trust import Identity


def rollout_request(canary: int | None, shadow: bool) -> dict[str, Any] | None:
    """What a request records of the rollout asked for; ConveyorError (exit 2) for one that cannot be."""
    if canary is not None and shadow:
        raise ConveyorError("a rollout is a canary or a shadow, not both", hint="Give --canary WEIGHT or --shadow.")
    if shadow:
        return {"mode": str(RolloutMode.SHADOW), "weight": 0}
    if canary is None:
        return None
    if not 1 <= canary <= 99:
        raise ConveyorError(
            f"a canary's weight is 1-99 (% of requests), not {canary}",
            hint="e.g. --canary 10; a full switch is a release without --canary.",
        )
    return {"mode": str(RolloutMode.CANARY), "weight": canary}


class PolicyDiffers(PolicyRefused):
    """The project file's policy is not the one the ledger holds in force."""


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (`2026-05-01`, `2026-05-01T12:00`, `...Z`, `...+02:00`); naive means UTC."""
    try:
        return naive_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ConveyorError(
            f"time {text!r} is not understood", hint="Write ISO 8601, e.g. 2026-05-01T12:00Z."
        ) from None


@dataclass(frozen=True)
class PolicyProposalView:
    """A proposed policy waiting for approvals: who proposed it, when, who approved, what it changes, what it
    still needs."""

    proposal: int  # the seq of its `policy.proposed` event
    digest: str
    proposed_by: str
    at: datetime
    approved_by: builtins.list[str]
    changes: builtins.list[str]  # against the policy in force
    missing: builtins.list[str]  # the approvals it still needs (nothing: it is adopted)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _proposal_view(state: LedgerState, proposal: PolicyProposal) -> PolicyProposalView:
    changes = state.in_force().changes(proposal.policy)
    approved_by = sorted(proposal.approvals)
    return PolicyProposalView(
        proposal.seq,
        proposal.policy.digest,
        proposal.proposed_by,
        proposal.at,
        approved_by,
        changes,
        state.change_missing(proposal),
    )


@dataclass
class PolicyStatus:
    """The policy the ledger holds in force, the project file's, how they differ, and open proposals."""

    in_force: PolicySet | None
    adopted_by: str | None
    adopted_at_event: int | None
    project: PolicySet
    changes: builtins.list[str]
    proposals: builtins.list[PolicyProposalView] = field(default_factory=builtins.list)

    @property
    def in_force_digest(self) -> str | None:
        return self.in_force.digest if self.in_force else None

    @property
    def project_digest(self) -> str:
        return self.project.digest

    @property
    def same(self) -> bool:
        return self.in_force_digest == self.project_digest

    def to_dict(self) -> dict[str, object]:
        """The JSON form (`release policy show --json`): both policies as the ledger records them."""
        return {
            "in_force": self.in_force.to_json() if self.in_force else None,
            "in_force_digest": self.in_force_digest,
            "adopted_by": self.adopted_by,
            "adopted_at_event": self.adopted_at_event,
            "project": self.project.to_json(),
            "project_digest": self.project_digest,
            "same": self.same,
            "changes": self.changes,
            "proposals": [proposal.to_dict() for proposal in self.proposals],
        }


@dataclass(frozen=True)
class StopReport:
    """What `release stop` did: the release it took down and who signed that (None when nothing was live), and
    what the registry and the target stopped."""

    stage: str
    release: int | None
    by: str | None
    at: datetime | None
    reason: str | None
    stopped: builtins.list[str]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Releases:
    """The release operations of one project against one ledger (the CLI and the Python API both use this).

    Every operation that changes the ledger takes the acting key (`key`: a SigningKey, a key file, or None for
    $CONVEYOR_SIGNING_KEY / git's user.signingkey); `expect` (the CLI's --as) must name its principal.
    """

    def __init__(self, project: Project, ledger: Ledger | None = None) -> None:
        self.project = project
        self.ledger = ledger or Ledger.open(project)

    def identity(self, key: KeyChoice = None, expect: str | None = None) -> Identity:
        return acting_identity(self.project, key, expect)

    # --- requests --------------------------------------------------------------------------------------------
    def create(
        self,
        build: str | Path | None,
        to: str,
        key: KeyChoice = None,
        *,
        expect: str | None = None,
        adopt: str | None = None,
        canary: int | None = None,
        shadow: bool = False,
    ) -> ReleaseView:
        """Request a build (build.json path or folder, package digest or a prefix; None: the latest) in stage `to`,
        accepted only by its signed attestations; deploys at once when the stage needs no approval. With `canary`
        (a weight, 1-99) or `shadow`, it rolls out beside the live release instead (see `rollouts`)."""
        rollout = rollout_request(canary, shadow)
        record = find_build(self.project.state_dir, build)
        identity = self.identity(key, expect)
        if record.project and record.project != self.project.name:
            raise ConveyorError(
                f"build {record.short} belongs to project {record.project!r}, not {self.project.name!r}",
                hint="Release it from its own project.",
            )
        policy = self._policy_for_request()
        shipment, model_env = attested_shipment(record, policy)
        return self._request(
            identity, to, ReleaseKind.RELEASE, shipment, model_env, policy=policy, adopt=adopt, rollout=rollout
        )

    def promote(
        self,
        release_id: int,
        to: str,
        key: KeyChoice = None,
        *,
        expect: str | None = None,
        canary: int | None = None,
        shadow: bool = False,
    ) -> ReleaseView:
        """Request the build of a release that went live in another stage in stage `to` (as a rollout beside the
        live release with `canary` or `shadow`)."""
        rollout = rollout_request(canary, shadow)
        identity = self.identity(key, expect)
        source = self._state().release(release_id)
        return self._request(
            identity, to, ReleaseKind.PROMOTION, source.shipment, source.model_env, source=release_id, rollout=rollout
        )

    def rollback(
        self,
        stage: str,
        to: int | None = None,
        key: KeyChoice = None,
        *,
        break_glass: bool = False,
        expect: str | None = None,
    ) -> ReleaseView:
        """Request, as a new release, the one live in `stage` before the current one (or release `to`).

        Like any release it needs the stage's approvals, unless `break_glass` and the acting principal is one of
        the stage's break_glass principals: then it deploys at once, marked as such in history and audit.
        """
        identity = self.identity(key, expect)
        source = self._rollback_source(self._state(), stage, to)
        return self._request(
            identity,
            stage,
            ReleaseKind.ROLLBACK,
            source.shipment,
            source.model_env,
            source=source.id,
            break_glass=break_glass,
        )

    def _rollback_source(self, state: LedgerState, stage: str, to: int | None) -> ReleaseState:
        """Release `to`, or the one that went live in `stage` last before the one live now."""
        went_live = [r for r in state.releases.values() if r.stage == stage and r.deployment and r.deployment.live_from]
        went_live.sort(key=lambda r: (r.deployment.live_from if r.deployment else None, r.id), reverse=True)
        if to is None:
            earlier = [r for r in went_live if r.id != state.live.get(stage)]
            if not earlier:
                raise CheckFailed(
                    f"nothing to roll back to in {stage}: no release was live there before the current one"
                )
            return earlier[0]
        found = [r for r in went_live if r.id == to]
        if not found:
            raise CheckFailed(
                f"release {to} was never live in {stage}, so {stage} cannot roll back to it",
                hint=f"See what was: conveyor history {stage}",
            )
        return found[0]

    def _policy_for_request(self) -> PolicySet:
        """The policy a request is checked against: the one in force, or (first use) the project file's."""
        in_force = self._state().policy
        return in_force if in_force is not None else PolicySet.from_project(self.project)

    def _request(
        self,
        identity: Identity,
        stage: str,
        kind: ReleaseKind,
        shipment: Shipment,
        model_env: str | None,
        *,
        source: int | None = None,
        break_glass: bool = False,
        policy: PolicySet | None = None,
        adopt: str | None = None,
        rollout: dict[str, Any] | None = None,
    ) -> ReleaseView:
        declared = PolicySet.from_project(self.project)
        with self.ledger.writing() as writer:
            self._adopt_on_first_use(writer, declared, identity, adopt)
            in_force = writer.state.in_force()
            require_in_force(identity, in_force)
            if policy is not None and policy.digest != in_force.digest:
                raise CheckFailed("the policy in force changed while the build was checked; request it again")
            self._require_declared(in_force, declared)
            stage_policy = in_force.stage(stage, f"the policy in force (and {self.project.file})")
            release_id = writer.state.next_release_id()
            data = {
                "stage": stage,
                "kind": str(kind),
                "source_release": source,
                "target": stage_policy.target,
                "policy": stage_policy.to_json(),
                "policy_digest": stage_policy.digest,
                "policy_set": in_force.digest,
                "build": shipment.to_json(model_env),
                "break_glass": break_glass,
            }
            if rollout is not None:  # written only for a rollout: a plain request reads as before
                data["rollout"] = rollout
            writer.append(EventKind.RELEASE_REQUESTED, release_id, data, identity)
            state = writer.state
        if state.release(release_id).status == ReleaseStatus.APPROVED:
            deploy(self.project, self.ledger, release_id, identity)
            return self.show(release_id)
        return self._view(state, release_id)

    def _adopt_on_first_use(
        self, writer: Writer, declared: PolicySet, identity: Identity, adopt: str | None = None
    ) -> None:
        """A ledger with no policy adopts the project's (trust on first use: the team's first request), saying
        what it adopts; in CI only the commit `adopt` (or $CONVEYOR_ADOPT) names (see `adoption`)."""
        if writer.state.policy is None:
            require_named(declared, require_committed(self.project), adopt)
            data = {"policy": declared.to_json(), "digest": declared.digest, "proposal": None, "source": "first use"}
            writer.append(EventKind.POLICY_ADOPTED, None, data, identity)

    def _require_declared(self, in_force: PolicySet, declared: PolicySet) -> None:
        if in_force.digest == declared.digest:
            return
        changes = in_force.changes(declared)
        raise PolicyDiffers(
            f"the release policy in {self.project.file} is not the one the ledger holds in force:\n  "
            + "\n  ".join(changes or ["(differs)"]),
            hint="Requests are checked against the policy in force, never against an edited or copied project file. "
            "To change it: conveyor release policy propose; the approvers of the policy in force then approve it "
            "(conveyor release policy approve N).",
        )

    # --- decisions -------------------------------------------------------------------------------------------
    def approve(
        self,
        release_id: int,
        key: KeyChoice = None,
        comment: str | None = None,
        *,
        expect: str | None = None,
        deploy_now: bool = True,
    ) -> ReleaseView:
        """Approve a pending release with an approver's key; the approval that completes it deploys it (unless
        `deploy_now` is False: then it stays approved for `deploy`, e.g. by CI after its environment's review)."""
        identity = self.identity(key, expect)
        waiting = self._state().release(release_id)
        if waiting.status == ReleaseStatus.ROLLING_OUT and waiting.rollout and waiting.rollout.pending:
            return self._approve_change(release_id, identity, waiting.rollout.pending.seq, deploy_now)
        state = self._decide(release_id, identity, EventKind.RELEASE_APPROVED, comment)
        if state.release(release_id).status == ReleaseStatus.APPROVED and deploy_now:
            deploy(self.project, self.ledger, release_id, identity)
            return self.show(release_id)
        return self._view(state, release_id)

    def reject(
        self, release_id: int, key: KeyChoice = None, comment: str | None = None, *, expect: str | None = None
    ) -> ReleaseView:
        """Reject a pending release (an approver, or its requester withdrawing it); it will never deploy."""
        state = self._decide(release_id, self.identity(key, expect), EventKind.RELEASE_REJECTED, comment)
        return self._view(state, release_id)

    def _decide(self, release_id: int, identity: Identity, kind: EventKind, comment: str | None) -> LedgerState:
        """Append the decision (the rules check it against the policy recorded with the release); the state after."""
        with self.ledger.writing() as writer:
            require_in_force(identity, writer.state.in_force())
            writer.append(kind, release_id, {"comment": comment}, identity)
        return writer.state

    def _view(self, state: LedgerState, release_id: int) -> ReleaseView:
        """The release as the state a write just committed holds it: verified before the write, its new event
        checked as readers check it, so there is no need to read the chain again."""
        return release_view(state.release(release_id), self.ledger.now(), Verification(True, None))

    # --- rollouts --------------------------------------------------------------------------------------------
    def rollout(
        self,
        release_id: int,
        key: KeyChoice = None,
        *,
        weight: int | None = None,
        complete: bool = False,
        abort: bool = False,
        reason: str | None = None,
        rule: str | None = None,
        figures: dict[str, float | None] | None = None,
        expect: str | None = None,
    ) -> ReleaseView:
        """Change a running rollout: a new `weight` or `complete` (a signed request, in effect once the stage's
        approvers approved it, at once in a stage without approvers), or `abort` (at once: back to what was
        approved; a watcher names the `rule` broken and the `figures`)."""
        if sum((weight is not None, complete, abort)) != 1:
            raise ConveyorError(
                "say one of: a new weight, --complete or --abort",
                hint=f"e.g. conveyor release rollout {release_id} --weight 50",
            )
        if weight is not None and not 0 <= weight <= 100:
            raise ConveyorError(f"weight {weight} is outside 0-100", hint="A weight is the % of requests, 0-100.")
        identity = self.identity(key, expect)
        if abort:
            return self._abort(release_id, identity, reason, rule, figures)
        data: dict[str, Any] = {"complete": True} if complete else {"weight": weight}
        with self.ledger.writing() as writer:
            require_in_force(identity, writer.state.in_force())
            self._require_rollout(writer.state, release_id)
            writer.append(EventKind.ROLLOUT_CHANGED, release_id, data, identity)
            state = writer.state
        return self._after_change(state, release_id, identity, deploy_now=True)

    def _require_rollout(self, state: LedgerState, release_id: int) -> ReleaseState:
        release = state.release(release_id)
        if release.rollout is None:
            raise ConveyorError(
                f"release {release_id} is not a rollout",
                hint=f"Start one with: conveyor release promote N --to {release.stage} --canary 10 (or --shadow)",
            )
        return release

    def _approve_change(self, release_id: int, identity: Identity, change: int, deploy_now: bool) -> ReleaseView:
        with self.ledger.writing() as writer:
            require_in_force(identity, writer.state.in_force())
            writer.append(EventKind.ROLLOUT_APPROVED, release_id, {"change": change}, identity)
            state = writer.state
        return self._after_change(state, release_id, identity, deploy_now=deploy_now)

    def _after_change(
        self, state: LedgerState, release_id: int, identity: Identity, *, deploy_now: bool
    ) -> ReleaseView:
        """Carry out a change that took effect: route the new weight, or deploy the completed rollout as live."""
        from conveyor.release.targets import target_for
        from conveyor.release.targets.base import RolloutPlan

        release = state.release(release_id)
        rollout = release.rollout
        assert rollout is not None  # noqa: S101 -- narrows for mypy: the release was found with its rollout
        last = rollout.changes[-1]
        if not last.effective:
            return self._view(state, release_id)
        if last.complete:
            if deploy_now:
                deploy(self.project, self.ledger, release_id, identity)
                return self.show(release_id)
            return self._view(state, release_id)
        plan = RolloutPlan(str(rollout.mode), rollout.weight)
        target = target_for(release.policy.target)
        target.reroute(self.project.state_dir, release.stage, release_id, release.shipment.package_digest, plan)
        return self._view(state, release_id)

    def _abort(
        self,
        release_id: int,
        identity: Identity,
        reason: str | None,
        rule: str | None,
        figures: dict[str, float | None] | None,
    ) -> ReleaseView:
        from conveyor.release.targets import target_for

        with self.ledger.writing() as writer:
            require_in_force(identity, writer.state.in_force())
            release = self._require_rollout(writer.state, release_id)
            data: dict[str, Any] = {"reason": reason}
            if rule is not None:
                data.update(rule=rule, figures=figures or {})
            writer.append(EventKind.ROLLOUT_ABORTED, release_id, data, identity)
            state = writer.state
        if release.deployment is not None:
            target = target_for(release.policy.target)
            target.reroute(self.project.state_dir, release.stage, release_id, release.shipment.package_digest, None)
        return self._view(state, release_id)

    # --- deployment ------------------------------------------------------------------------------------------
    def deploy(
        self, release_id: int, key: KeyChoice = None, *, resume: bool = False, force: bool = False
    ) -> ReleaseView:
        """Deploy an approved release (or, with `resume`, finish a deployment that stopped half-way)."""
        deploy(self.project, self.ledger, release_id, self.identity(key), resume=resume, force=force)
        return self.show(release_id)

    def resume(self, release_id: int, key: KeyChoice = None, *, force: bool = False) -> ReleaseView:
        """Finish a deployment that was killed or failed half-way; finished steps are not repeated."""
        return self.deploy(release_id, key, resume=True, force=force)

    def stop(
        self, stage: str, key: KeyChoice = None, *, expect: str | None = None, reason: str | None = None
    ) -> StopReport:
        """Take down what is live in `stage`: a signed `stage.stopped` event first (refused unless the signer may
        stop the stage), then the stage's alias leaves its registry and the target stops what it runs. With
        nothing live, only the target's processes are stopped (nothing is signed)."""
        from conveyor.release.alias import clear_stage_alias
        from conveyor.release.targets import target_for

        if stage not in self.project.config.release:
            raise ConfigError(
                f"stage {stage!r} is not declared in {self.project.file}",
                hint=f"Its stages: {', '.join(self.project.config.release) or 'none'}.",
            )
        signed: SignedEvent | None = None
        release: ReleaseState | None = None
        if self._state().live.get(stage) is not None:
            identity = self.identity(key, expect)
            with self.ledger.writing() as writer:
                require_in_force(identity, writer.state.in_force())
                live = writer.state.live.get(stage)  # read again under the chain's lock
                if live is not None:
                    data = {"stage": stage, "reason": reason}
                    signed = writer.append(EventKind.STAGE_STOPPED, live, data, identity)
                    release = writer.state.releases[live]
        done = []
        if release is not None:
            cleared = clear_stage_alias(self.project, stage, release.policy.env, release.shipment)
            done += [cleared] if cleared else []
        declared = self.project.config.release[stage]
        done += target_for(declared.target).stop(self.project.name, self.project.state_dir, stage)
        if signed is None:
            return StopReport(stage, None, None, None, reason, done)
        return StopReport(stage, signed.event.release, signed.event.by, signed.event.at, reason, done)

    # --- the policy in force ---------------------------------------------------------------------------------
    def policy(self) -> PolicyStatus:
        """The policy in force in the ledger beside the project file's, and the open proposals."""
        declared = PolicySet.from_project(self.project)
        verified = self.ledger.verified()
        state = verified.state
        if not verified.report.ok and state.policy is None:
            raise LedgerBroken(f"the ledger does not verify: {verified.report.trouble}")
        proposals = [_proposal_view(state, p) for p in state.proposals.values() if not p.adopted]
        in_force = state.policy
        return PolicyStatus(
            in_force=in_force,
            adopted_by=state.policy_adopted_by,
            adopted_at_event=state.policy_seq,
            project=declared,
            changes=in_force.changes(declared) if in_force else [],
            proposals=proposals,
        )

    def propose_policy(
        self, key: KeyChoice = None, *, expect: str | None = None, adopt: str | None = None
    ) -> PolicyStatus:
        """Propose the project file's policy; adopted at once when no stage of the policy in force is guarded."""
        identity = self.identity(key, expect)
        declared = PolicySet.from_project(self.project)
        with self.ledger.writing() as writer:
            if writer.state.policy is None:
                self._adopt_on_first_use(writer, declared, identity, adopt)
            else:
                require_in_force(identity, writer.state.in_force())
                require_committed(self.project)
                data = {"policy": declared.to_json(), "digest": declared.digest}
                proposal = writer.append(EventKind.POLICY_PROPOSED, None, data, identity).seq
                self._adopt_when_approved(writer, proposal, identity)
        return self.policy()

    def approve_policy(self, proposal: int, key: KeyChoice = None, *, expect: str | None = None) -> PolicyStatus:
        """Approve a proposed policy as an approver of the policy in force; the approval that completes it adopts
        it."""
        identity = self.identity(key, expect)
        with self.ledger.writing() as writer:
            require_in_force(identity, writer.state.in_force())
            found = writer.state.proposals.get(proposal)
            digest = found.policy.digest if found else None
            writer.append(EventKind.POLICY_APPROVED, None, {"proposal": proposal, "digest": digest}, identity)
            self._adopt_when_approved(writer, proposal, identity)
        return self.policy()

    def _adopt_when_approved(self, writer: Writer, proposal: int, identity: Identity) -> None:
        found = writer.state.proposals[proposal]
        if not writer.state.change_missing(found):
            data = {"policy": found.policy.to_json(), "digest": found.policy.digest, "proposal": proposal}
            writer.append(EventKind.POLICY_ADOPTED, None, data, identity)

    # --- reading ---------------------------------------------------------------------------------------------
    def state(self) -> LedgerState:
        """The state folded from the verified events (LedgerBroken when they do not verify)."""
        return self._state()

    def _state(self) -> LedgerState:
        verified = self.ledger.verified()
        if not verified.report.ok and verified.report.problem:
            raise LedgerBroken(
                f"the ledger does not verify: {verified.report.trouble}",
                hint="`conveyor audit verify` names the first bad event; restore the ledger from a backup.",
            )
        return verified.state

    def snapshot(self) -> LedgerSnapshot:
        """One verified reading of every release and stage history (what the read commands and the dashboard show)."""
        verified = self.ledger.verified()
        report = verified.report
        verification = Verification(report.ok, None if report.ok else report.trouble)
        return LedgerSnapshot(verified.state, verification, report, self.ledger.now())

    def show(self, release_id: int) -> ReleaseView:
        snapshot = self.snapshot()
        found = snapshot.release(release_id)
        if found is None and not snapshot.verification.ok:
            raise LedgerBroken(
                f"release {release_id} cannot be shown: {snapshot.verification.problem}",
                hint="`conveyor audit verify` names the first bad event; nothing after it is trusted.",
            )
        if found is None:
            raise NotFoundError(f"release {release_id} does not exist", hint="List releases: conveyor releases list")
        return found

    def list(self, stage: str | None = None, status: str | None = None, limit: int = 50) -> builtins.list[ReleaseView]:
        return self.snapshot().releases(stage, status, limit)

    def history(self, stage: str, at: datetime | str | None = None) -> builtins.list[HistoryEntry]:
        """What was live in `stage`, oldest first; with `at`, only what was live at that moment."""
        moment = parse_time(at) if isinstance(at, str) else (naive_utc(at) if at else None)
        return self.snapshot().history(stage, moment)
