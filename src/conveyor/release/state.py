"""The ledger's state, computed by folding its verified events in order; every rule of a release is checked here.

A writer folds the chain, asks the state to `apply` the event it means to append (which raises a `RuleBroken`
naming the rule and the fix when the event is not allowed), and appends it only then. A verifier folds the same
events with the same `apply`: an event that breaks a rule, even one signed by a real key and inserted by hand, is
the first bad event. So there is one statement of the rules, and the state always comes from signed events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed
from conveyor.release.policy import PolicyRefused, PolicySet, StagePolicy
from conveyor.release.release_map import ReleaseMap
from conveyor.release.rollouts import RolloutChange, RolloutState, rollout_from_request
from conveyor.release.shipment import Shipment
from conveyor.release.status import Decision, DeploymentStatus, EventKind, ReleaseKind, ReleaseStatus, RolloutMode
from conveyor.release.targets import StepResult, target_entry
from conveyor.trust import AllowedSigners

if TYPE_CHECKING:
    from conveyor.release.events import Event

ALIAS_STEP = "alias"


class RuleBroken(PolicyRefused):
    """An event the rules do not allow at this point of the chain."""


class RolloutRefused(RuleBroken):
    """A rollout asked where none can be: nothing live, another rollout in the stage, a target that cannot split
    (bad input: exit 2, nothing recorded)."""

    exit_code = 2


class NotOwner(RuleBroken):
    """A deployment step by a deployer whose claim was taken over (or that never claimed)."""


@dataclass(frozen=True)
class Signature:
    """Who signed an event of a release, with which key, when, and what the event was."""

    seq: int
    kind: EventKind
    principal: str
    key: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": str(self.kind), "by": self.principal, "key": self.key, "at": self.at}


@dataclass(frozen=True)
class DecisionRecord:
    """An approval or rejection, and whether it counts toward the recorded policy."""

    principal: str
    key: str
    decision: Decision
    comment: str | None
    at: datetime
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.principal,
            "key": self.key,
            "decision": str(self.decision),
            "comment": self.comment,
            "at": self.at,
            "seq": self.seq,
        }


@dataclass
class DeploymentState:
    """The one deployment of a release: who runs it (an owner token per claim), the steps done, the outcome."""

    status: DeploymentStatus
    owner: str | None
    started_at: datetime
    started_by: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    finished_at: datetime | None = None
    live_from: datetime | None = None
    live_until: datetime | None = None
    error: str | None = None
    claims: int = 1
    stopped_by: str | None = None  # who took it down (`release stop`), with `live_until` the time
    stop_reason: str | None = None

    @property
    def reference(self) -> str | None:
        for name in reversed(list(self.steps)):
            if name != ALIAS_STEP and self.steps[name].reference:
                return self.steps[name].reference
        return None


@dataclass
class ReleaseState:
    """A release as its verified events make it."""

    id: int
    stage: str
    kind: ReleaseKind
    policy: StagePolicy
    policy_set: str
    shipment: Shipment
    model_env: str | None
    requested_by: str
    requested_key: str
    requested_at: datetime
    expires_at: datetime | None
    source_release: int | None
    break_glass: bool
    status: ReleaseStatus
    decisions: list[DecisionRecord] = field(default_factory=list)
    deployment: DeploymentState | None = None
    signatures: list[Signature] = field(default_factory=list)
    decided_at: datetime | None = None
    rollout: RolloutState | None = None

    @property
    def approved_by(self) -> list[str]:
        return [d.principal for d in self.decisions if d.decision == Decision.APPROVE]

    def status_at(self, now: datetime) -> ReleaseStatus:
        """The status, with a pending release past its approval window shown as expired."""
        if self.status == ReleaseStatus.PENDING and self.expires_at is not None and now > self.expires_at:
            return ReleaseStatus.EXPIRED
        return self.status

    def steps(self) -> list[str]:
        """Every step its deployment runs: the target's, then the stage's model alias. A rollout runs the target's
        rollout steps (the candidate beside the live release), and only once completed the rest and the alias."""
        entry = target_entry(self.policy.target)
        steps = entry.steps
        if self.rollout is None:
            return [*steps, ALIAS_STEP]
        split = list(entry.rollout_steps)
        if not self.rollout.completing:
            return split
        return [*split, *(name for name in steps if name not in split), ALIAS_STEP]


@dataclass
class PolicyProposal:
    """A proposed policy set, waiting for the approvers of the policy in force."""

    seq: int
    policy: PolicySet
    proposed_by: str
    at: datetime
    approvals: dict[str, int] = field(default_factory=dict)
    adopted: bool = False


@dataclass
class LedgerState:
    """Everything the events say: the policy in force, proposals, releases, what is live where."""

    policy: PolicySet | None = None
    policy_seq: int | None = None
    policy_adopted_by: str | None = None
    proposals: dict[int, PolicyProposal] = field(default_factory=dict)
    releases: ReleaseMap[ReleaseState] = field(default_factory=ReleaseMap)  # read on demand from a kept prefix
    live: dict[str, int] = field(default_factory=dict)
    rollouts: dict[str, int] = field(default_factory=dict)  # stage → the release rolling out there (or asked to)
    went_live: set[tuple[str, str]] = field(default_factory=set)
    seq: int = 0
    last_at: datetime | None = None
    _allowed: dict[str, AllowedSigners] = field(default_factory=dict, repr=False, compare=False)

    # --- reading -----------------------------------------------------------------------------------------
    def release(self, release_id: int) -> ReleaseState:
        from conveyor.errors import NotFoundError

        if release_id not in self.releases:
            raise NotFoundError(f"release {release_id} does not exist", hint="List releases: conveyor releases list")
        return self.releases[release_id]

    def next_release_id(self) -> int:
        # releases are numbered in the order they are requested (the rules hold each to this), so the newest is last
        return next(reversed(self.releases), 0) + 1

    def in_force(self) -> PolicySet:
        if self.policy is None:
            raise CheckFailed("the ledger holds no policy yet", hint="The first request adopts the project's policy.")
        return self.policy

    def signers_for(self, event: Event) -> PolicySet:
        """The policy whose signers may sign `event`: the one in force, or for the first adoption its own."""
        if self.policy is None:
            if event.kind != EventKind.POLICY_ADOPTED or "policy" not in event.data:
                raise RuleBroken(f"event {event.seq} ({event.kind}) comes before any policy was adopted")
            return PolicySet.from_json(event.data["policy"])
        return self.policy

    # --- folding -----------------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one verified event in; RuleBroken (with the rule and the fix) when the rules do not allow it."""
        handler = {
            EventKind.POLICY_ADOPTED: self._policy_adopted,
            EventKind.POLICY_PROPOSED: self._policy_proposed,
            EventKind.POLICY_APPROVED: self._policy_approved,
            EventKind.RELEASE_REQUESTED: self._requested,
            EventKind.RELEASE_APPROVED: self._decided,
            EventKind.RELEASE_REJECTED: self._decided,
            EventKind.DEPLOYMENT_CLAIMED: self._claimed,
            EventKind.DEPLOYMENT_STEP: self._step,
            EventKind.DEPLOYMENT_FAILED: self._failed,
            EventKind.RELEASE_LIVE: self._live,
            EventKind.STAGE_STOPPED: self._stopped,
            EventKind.ROLLOUT_STARTED: self._rollout_started,
            EventKind.ROLLOUT_CHANGED: self._rollout_changed,
            EventKind.ROLLOUT_APPROVED: self._rollout_approved,
            EventKind.ROLLOUT_ABORTED: self._rollout_aborted,
        }[event.kind]
        if self.last_at is not None and event.at < self.last_at:
            raise RuleBroken(
                f"event {event.seq} is dated {event.at:%Y-%m-%d %H:%M:%S}, before the event it follows "
                f"({self.last_at:%Y-%m-%d %H:%M:%S}): events are never backdated"
            )
        self._check_window(event)
        handler(event)
        self.seq, self.last_at = event.seq, event.at
        if event.release is not None and event.release in self.releases:
            self.releases[event.release].signatures.append(
                Signature(event.seq, event.kind, event.by, event.key, event.at)
            )

    def _check_window(self, event: Event) -> None:
        """The signer's key must be valid at the event's time (valid-after/valid-before of the policy's signers)."""
        policy = self.signers_for(event)
        if policy.digest not in self._allowed:
            self._allowed[policy.digest] = AllowedSigners.parse(policy.allowed_signers_text, "the ledger's policy")
        lines = [
            entry
            for entry in self._allowed[policy.digest].entries
            if entry.name == event.by and entry.key.fingerprint == event.key
        ]
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
        if lines and not any(entry.valid_at(at) for entry in lines):
            raise RuleBroken(
                f"event {event.seq}: {event.by}'s key {event.key} is not valid at {at:%Y-%m-%d %H:%M:%S}Z "
                f"({'; '.join(entry.window for entry in lines)}, in the policy in force)",
                hint="Sign with a current key of the policy in force; a renewed window is a change of policy "
                "(allowed_signers, then conveyor release policy propose).",
            )

    # --- policy ------------------------------------------------------------------------------------------
    def _policy_adopted(self, event: Event) -> None:
        policy = PolicySet.from_json(event.data["policy"])
        if policy.digest != event.data.get("digest"):
            raise RuleBroken(f"event {event.seq}: the adopted policy does not match its digest")
        proposal_seq = event.data.get("proposal")
        if proposal_seq is None:
            if self.policy is not None:
                raise RuleBroken(
                    f"event {event.seq}: a policy was adopted without a proposal while another is in force",
                    hint="A change of policy is proposed and approved: conveyor release policy propose",
                )
        else:
            proposal = self.proposals.get(int(proposal_seq))
            if proposal is None or proposal.adopted or proposal.policy.digest != policy.digest:
                raise RuleBroken(f"event {event.seq}: adopts a policy that was not proposed as event {proposal_seq}")
            missing = self.change_missing(proposal)
            if missing:
                raise RuleBroken(f"event {event.seq}: the policy change still needs {'; '.join(missing)}")
            proposal.adopted = True
        self.policy, self.policy_seq, self.policy_adopted_by = policy, event.seq, event.by

    def _policy_proposed(self, event: Event) -> None:
        current = self.in_force()
        policy = PolicySet.from_json(event.data["policy"])
        if policy.digest != event.data.get("digest"):
            raise RuleBroken(f"event {event.seq}: the proposed policy does not match its digest")
        if policy.digest == current.digest:
            raise RuleBroken("the project's policy is already the one in force", hint="There is nothing to propose.")
        self.proposals[event.seq] = PolicyProposal(event.seq, policy, event.by, event.at)

    def _policy_approved(self, event: Event) -> None:
        current = self.in_force()
        proposal = self.proposals.get(int(event.data.get("proposal", -1)))
        if proposal is None or proposal.adopted:
            raise RuleBroken(
                f"there is no open policy proposal {event.data.get('proposal')}",
                hint="See it with: conveyor release policy show",
            )
        if proposal.policy.digest != event.data.get("digest"):
            raise RuleBroken(f"event {event.seq}: approves another policy than proposal {proposal.seq}")
        deciders = current.deciders()
        if event.by not in deciders:
            raise PolicyRefused(
                f"{event.by} is not an approver of any stage, so cannot approve a change of policy",
                hint="Approvers of the policy in force: " + ", ".join(sorted(deciders) or ["none"]) + ".",
            )
        if event.by == proposal.proposed_by:
            raise PolicyRefused(
                f"{event.by} proposed policy proposal {proposal.seq} and may not approve it",
                hint="A change of policy is approved by others than its proposer: "
                + ", ".join(sorted(deciders - {event.by}) or ["none"])
                + ".",
            )
        if event.by in proposal.approvals:
            raise PolicyRefused(f"{event.by} already approved policy proposal {proposal.seq}")
        proposal.approvals[event.by] = event.seq

    def change_missing(self, proposal: PolicyProposal) -> list[str]:
        """What a proposal still needs under the policy in force (see `conveyor.release.policy`): each stage's
        min_approvals from its own approvers, and at least the strictest stage's count (never fewer than one) from
        the approvers of all stages; the proposer's approval never counts. Nothing when no stage names approvers."""
        current = self.in_force()
        named = [stage for stage in current.stages.values() if stage.approvers]
        if not named:
            return []
        counted = {p for p in proposal.approvals if p != proposal.proposed_by}
        missing = []
        for stage in sorted(named, key=lambda s: s.stage):
            own = counted & set(stage.approvers)
            if len(own) < stage.min_approvals:
                missing.append(
                    f"{stage.min_approvals - len(own)} more approval(s) from {stage.stage}'s approvers "
                    f"({stage.describe_approvers()})"
                )
        strictest = max(1, *(stage.min_approvals for stage in named))
        deciders = counted & current.deciders()
        if not missing and len(deciders) < strictest:
            missing.append(
                f"{strictest - len(deciders)} more approval(s) from the approvers of any stage "
                f"({', '.join(sorted(current.deciders() - {proposal.proposed_by}))})"
            )
        return missing

    # --- requests ----------------------------------------------------------------------------------------
    def _requested(self, event: Event) -> None:
        data = event.data
        current = self.in_force()
        stage = str(data["stage"])
        recorded = StagePolicy.from_json(data["policy"])
        in_force = current.stage(stage)
        if data.get("policy_set") != current.digest or recorded.to_json() != in_force.to_json():
            raise RuleBroken(
                f"the [release.{stage}] policy of this request is not the one in force in the ledger",
                hint="Use the committed project file; to change the policy, propose it and have it approved: "
                "conveyor release policy propose",
            )
        if data.get("policy_digest") != recorded.digest:
            raise RuleBroken(f"event {event.seq}: the recorded policy does not match its digest")
        if event.release != self.next_release_id():
            raise RuleBroken(f"event {event.seq}: release number {event.release} is out of sequence")
        kind = ReleaseKind(data["kind"])
        shipment = Shipment.from_json(data["build"])
        source = None if data.get("source_release") is None else int(data["source_release"])
        if kind in (ReleaseKind.PROMOTION, ReleaseKind.ROLLBACK) and source is None:
            raise RuleBroken(f"event {event.seq}: a {kind} names no source release")
        if kind == ReleaseKind.PROMOTION:
            self._check_promotion(stage, int(source or 0), shipment)
        elif kind == ReleaseKind.ROLLBACK:
            self._check_rollback(stage, int(source or 0), shipment)
        if kind != ReleaseKind.ROLLBACK:
            for required in recorded.requires:
                if (required, shipment.package_digest) not in self.went_live:
                    raise RuleBroken(
                        f"build {shipment.short} has not been deployed to {required}, which {stage} requires",
                        hint=f"Release it to {required} first: conveyor release create BUILD --to {required}",
                    )
        _check_training(stage, recorded, shipment)
        self._check_no_rollout(stage, event.at)
        try:
            rollout = rollout_from_request(int(event.release or 0), data)
        except (ValueError, KeyError, TypeError) as bad:
            raise RuleBroken(f"event {event.seq}: the rollout asked for cannot be ({bad})") from None
        if rollout is not None:
            self._check_rollout_request(stage, kind, recorded, shipment)
        break_glass = bool(data.get("break_glass"))
        if break_glass and (kind != ReleaseKind.ROLLBACK or event.by not in recorded.break_glass):
            raise RuleBroken(
                f"{event.by} may not break glass in {stage}: only a rollback by a break_glass principal "
                f"({', '.join(recorded.break_glass) or 'none named'}) needs no approval"
            )
        needs = recorded.needs_approval and not break_glass
        expires_at = event.at + recorded.timeout_delta if needs else None
        self.releases[int(event.release)] = ReleaseState(
            id=int(event.release),
            stage=stage,
            kind=kind,
            policy=in_force,  # the same policy as recorded (checked above), one object for every release
            policy_set=current.digest,
            shipment=shipment,
            model_env=data["build"].get("model_env"),
            requested_by=event.by,
            requested_key=event.key,
            requested_at=event.at,
            expires_at=expires_at,
            source_release=source,
            break_glass=break_glass,
            status=ReleaseStatus.PENDING if needs else ReleaseStatus.APPROVED,
            decided_at=None if needs else event.at,
            rollout=rollout,
        )
        if rollout is not None:
            self.rollouts[stage] = int(event.release)

    def _check_no_rollout(self, stage: str, at: datetime) -> None:
        """While a rollout is asked for or runs in a stage, nothing else is released there."""
        running = self.rollout_in(stage, at)
        if running is not None:
            raise RolloutRefused(
                f"release {running.id} rolls out in {stage} ({running.status_at(at)}); a stage has one rollout "
                "at a time and takes no other release during it",
                hint=f"Complete or abort it first: conveyor release rollout {running.id} --complete (or --abort)",
            )

    def rollout_in(self, stage: str, at: datetime) -> ReleaseState | None:
        """The release rolling out in `stage` (or asked to, and not yet rejected or expired) at `at`."""
        found = self.releases.get(self.rollouts.get(stage, 0))
        if found is None or found.status_at(at) in (ReleaseStatus.REJECTED, ReleaseStatus.EXPIRED):
            return None
        return found

    def _check_rollout_request(self, stage: str, kind: ReleaseKind, policy: StagePolicy, shipment: Shipment) -> None:
        if kind == ReleaseKind.ROLLBACK:
            raise RuleBroken("a rollback is never a rollout: it goes back at once to what was live")
        live = self.live.get(stage)
        if live is None:
            raise RolloutRefused(
                f"nothing is live in {stage}, so there is nothing to roll out beside",
                hint=f"Release it to {stage} without --canary/--shadow first.",
            )
        if self.releases[live].shipment.package_digest == shipment.package_digest:
            raise RuleBroken(f"build {shipment.short} is the one live in {stage} (release {live}) already")
        if not target_entry(policy.target).rollout_steps:
            raise RolloutRefused(
                f"{stage}'s target {policy.target} cannot split traffic between two releases",
                hint="Rollouts run on local://PORT stages (conveyor's own forwarder splits the requests).",
            )

    def _went_live(self, release_id: int) -> ReleaseState | None:
        found = self.releases.get(release_id)
        if found is None or found.deployment is None or found.deployment.live_from is None:
            return None
        return found

    def _check_promotion(self, stage: str, source: int, shipment: Shipment) -> None:
        origin = self._went_live(source)
        if origin is None:
            status = self.releases[source].status if source in self.releases else "unknown"
            raise RuleBroken(
                f"release {source} was never deployed, so it cannot be promoted",
                hint=f"Its status is {status}. Promote a release that went live.",
            )
        if origin.stage == stage:
            raise RuleBroken(f"release {source} is already a release to {stage}", hint="Promote to the next stage.")
        if origin.shipment.package_digest != shipment.package_digest:
            raise RuleBroken(f"a promotion of release {source} must ship its build {origin.shipment.short}")

    def _check_rollback(self, stage: str, source: int, shipment: Shipment) -> None:
        origin = self._went_live(source)
        if origin is None or origin.stage != stage:
            raise RuleBroken(
                f"release {source} was never live in {stage}, so {stage} cannot roll back to it",
                hint=f"See what was: conveyor history {stage}",
            )
        if self.live.get(stage) == source:
            raise RuleBroken(f"release {source} is the one live in {stage} now")
        if origin.shipment.package_digest != shipment.package_digest:
            raise RuleBroken(f"a rollback to release {source} must ship its build {origin.shipment.short}")

    # --- decisions ---------------------------------------------------------------------------------------
    def _decided(self, event: Event) -> None:
        release = self.release(int(event.release or 0))
        decision = Decision.APPROVE if event.kind == EventKind.RELEASE_APPROVED else Decision.REJECT
        verb = f"{decision}d"
        if release.status != ReleaseStatus.PENDING:
            raise RuleBroken(
                f"release {release.id} is {release.status}; only a pending release can be {verb}",
                hint=f"See: conveyor releases show {release.id}",
            )
        if release.expires_at is not None and event.at > release.expires_at:
            raise RuleBroken(
                f"release {release.id} expired at {release.expires_at:%Y-%m-%d %H:%M} UTC and can no longer be {verb}",
                hint=f"Its approval window (release.{release.stage}.timeout = {release.policy.timeout}) has passed; "
                "request it again with conveyor release promote or create.",
            )
        if decision == Decision.APPROVE:
            release.policy.check_approver(event.by, release.requested_by, release.id)
        else:
            release.policy.check_may_reject(event.by, release.requested_by, release.id)
        earlier = next((d for d in release.decisions if d.principal == event.by), None)
        if earlier is not None:
            raise RuleBroken(f"{event.by} already decided on release {release.id} ({earlier.decision}d)")
        comment = event.data.get("comment")
        release.decisions.append(
            DecisionRecord(
                event.by, event.key, decision, None if comment is None else str(comment), event.at, event.seq
            )
        )
        if decision == Decision.REJECT:
            release.status, release.decided_at = ReleaseStatus.REJECTED, event.at
        elif len(release.approved_by) >= release.policy.min_approvals:
            release.status, release.decided_at = ReleaseStatus.APPROVED, event.at

    # --- deployment --------------------------------------------------------------------------------------
    def _claimed(self, event: Event) -> None:
        release = self.release(int(event.release or 0))
        resume = bool(event.data.get("resume"))
        completing = release.rollout is not None and release.rollout.completing
        allowed = (
            release.status == ReleaseStatus.APPROVED
            or (resume and release.status in (ReleaseStatus.DEPLOYING, ReleaseStatus.FAILED))
            or (completing and release.status == ReleaseStatus.ROLLING_OUT)
        )
        if release.status in (ReleaseStatus.LIVE, ReleaseStatus.SUPERSEDED):
            raise RuleBroken(
                f"release {release.id} was already deployed ({release.status}); it is never deployed twice"
            )
        if not allowed:
            hint = None
            if release.status in (ReleaseStatus.DEPLOYING, ReleaseStatus.FAILED):
                hint = f"Resume it with: conveyor release resume {release.id}"
            elif release.status == ReleaseStatus.PENDING:
                hint = f"It needs {release.policy.min_approvals - len(release.approved_by)} more approval(s)."
            raise RuleBroken(f"release {release.id} is {release.status} and cannot be deployed now", hint=hint)
        token = str(event.data["token"])
        if release.deployment is None:
            release.deployment = DeploymentState(DeploymentStatus.RUNNING, token, event.at, event.by)
        else:
            release.deployment.status, release.deployment.owner = DeploymentStatus.RUNNING, token
            release.deployment.error = None
            release.deployment.claims += 1
        release.status = ReleaseStatus.DEPLOYING

    def _owned(self, event: Event) -> tuple[ReleaseState, DeploymentState]:
        release = self.release(int(event.release or 0))
        deployment = release.deployment
        if (
            release.status != ReleaseStatus.DEPLOYING
            or deployment is None
            or deployment.owner != event.data.get("token")
        ):
            raise NotOwner(f"release {release.id} was taken over by another deployment; this one stops")
        return release, deployment

    def _step(self, event: Event) -> None:
        release, deployment = self._owned(event)
        name = str(event.data["name"])
        if name not in release.steps() or name in deployment.steps:
            raise RuleBroken(f"event {event.seq}: step {name!r} is not a step to do for release {release.id}")
        deployment.steps[name] = StepResult.from_dict(dict(event.data.get("result") or {}))

    def _failed(self, event: Event) -> None:
        release, deployment = self._owned(event)
        error = str(event.data.get("error") or "failed")
        release.status = ReleaseStatus.FAILED
        deployment.status, deployment.error, deployment.finished_at = DeploymentStatus.FAILED, error, event.at
        deployment.owner = None

    def _live(self, event: Event) -> None:
        release, deployment = self._owned(event)
        if release.rollout is not None and not release.rollout.completing:
            raise RuleBroken(f"release {release.id} is a rollout; it goes live only once its completion is approved")
        missing = [name for name in release.steps() if name not in deployment.steps]
        if missing:
            raise RuleBroken(f"release {release.id} cannot go live before its steps {', '.join(missing)}")
        if release.rollout is not None:
            release.rollout.ended_at, release.rollout.outcome = event.at, "completed"
            release.rollout.weights.append((event.at, 100))
            self.rollouts.pop(release.stage, None)
        previous = self.live.get(release.stage)
        if previous is not None:
            old = self.releases[previous]
            old.status = ReleaseStatus.SUPERSEDED
            if old.deployment is not None:
                old.deployment.status, old.deployment.live_until = DeploymentStatus.SUPERSEDED, event.at
        release.status = ReleaseStatus.LIVE
        deployment.status, deployment.owner = DeploymentStatus.LIVE, None
        deployment.live_from = deployment.finished_at = event.at
        self.live[release.stage] = release.id
        self.went_live.add((release.stage, release.shipment.package_digest))

    def _stopped(self, event: Event) -> None:
        """`release stop`: the live release of a stage is taken down; the stage serves nothing until a release (or
        a rollback to this one) goes live. A stage with approvers is stopped only by one of them (or a break_glass
        principal): taking prod down is a decision of the people who decide what runs there."""
        release = self.release(int(event.release or 0))
        stage = str(event.data.get("stage"))
        if release.stage != stage or self.live.get(stage) != release.id:
            live = self.live.get(stage)
            raise RuleBroken(
                f"release {release.id} is not live in {stage}"
                + (f" (release {live} is)" if live is not None else " (nothing is)")
            )
        rolling = self.rollout_in(stage, event.at)
        if rolling is not None:
            raise RuleBroken(
                f"release {rolling.id} is rolling out in {stage}; abort it before stopping the stage",
                hint=f"conveyor release rollout {rolling.id} --abort",
            )
        policy = release.policy
        may_stop = (*policy.approvers, *policy.break_glass)
        if policy.approvers and event.by not in may_stop:
            raise RuleBroken(
                f"{event.by} may not stop {stage}: a stage with approvers is stopped by one of them "
                f"({', '.join(may_stop)})",
                hint="Ask one of them to run: conveyor release stop " + stage,
            )
        deployment = release.deployment
        assert deployment is not None  # noqa: S101 -- narrows for mypy: a live release has one
        release.status = ReleaseStatus.STOPPED
        deployment.status, deployment.live_until = DeploymentStatus.STOPPED, event.at
        deployment.stopped_by = event.by
        reason = event.data.get("reason")
        deployment.stop_reason = None if reason is None else str(reason)
        del self.live[stage]

    # --- rollouts -----------------------------------------------------------------------------------------
    def _rolling(self, event: Event) -> tuple[ReleaseState, RolloutState]:
        release = self.release(int(event.release or 0))
        if release.rollout is None:
            raise RuleBroken(f"release {release.id} is not a rollout", hint=f"See: conveyor releases show {release.id}")
        return release, release.rollout

    def _rollout_started(self, event: Event) -> None:
        release, deployment = self._owned(event)
        rollout = release.rollout
        if rollout is None or rollout.started_at is not None:
            raise RuleBroken(f"event {event.seq}: release {release.id} has no rollout to start")
        missing = [name for name in release.steps() if name not in deployment.steps]
        if missing:
            raise RuleBroken(f"release {release.id}'s rollout cannot start before its steps {', '.join(missing)}")
        beside = self.live.get(release.stage)
        if beside is None:
            raise RuleBroken(f"nothing is live in {release.stage} any more, so release {release.id} cannot roll out")
        rollout.beside, rollout.started_at = beside, event.at
        rollout.weights.append((event.at, rollout.weight))
        release.status = ReleaseStatus.ROLLING_OUT
        deployment.status, deployment.owner = DeploymentStatus.ROLLING_OUT, None

    def _rollout_changed(self, event: Event) -> None:
        release, rollout = self._rolling(event)
        if release.status != ReleaseStatus.ROLLING_OUT or not rollout.running:
            raise RuleBroken(
                f"release {release.id} is {release.status}, not rolling out; only a running rollout changes"
            )
        pending = rollout.pending
        if pending is not None:
            raise RuleBroken(
                f"release {release.id}'s rollout already waits for approval of {pending.describe()} (event "
                f"{pending.seq})",
                hint=f"Approve it (conveyor approve {release.id}) or abort the rollout.",
            )
        if rollout.completing:
            raise RuleBroken(f"release {release.id}'s rollout is completing; it changes no more")
        complete = bool(event.data.get("complete"))
        weight = None if complete else event.data.get("weight")
        if not complete:
            if rollout.mode == RolloutMode.SHADOW:
                raise RuleBroken(
                    f"release {release.id} is a shadow: it answers no request, so it has no weight",
                    hint=f"Complete it (conveyor release rollout {release.id} --complete) or abort it.",
                )
            if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
                raise RuleBroken(f"a rollout's weight is a whole number 0-100 (% of requests), not {weight!r}")
            if weight == rollout.weight:
                raise RuleBroken(f"release {release.id} already serves {weight}% of {release.stage}'s requests")
        change = RolloutChange(event.seq, event.by, event.at, weight, complete)
        rollout.changes.append(change)
        if not release.policy.needs_approval:
            self._take_effect(release, rollout, change, event.at)

    def _rollout_approved(self, event: Event) -> None:
        release, rollout = self._rolling(event)
        pending = rollout.pending
        if pending is None or pending.seq != event.data.get("change"):
            raise RuleBroken(
                f"release {release.id}'s rollout has no change {event.data.get('change')} waiting for approval",
                hint=f"See: conveyor releases show {release.id}",
            )
        release.policy.check_approver(event.by, pending.by, release.id)
        if event.by in pending.approvals:
            raise RuleBroken(f"{event.by} already approved {pending.describe()} of release {release.id}")
        pending.approvals.append(event.by)
        if len(pending.approvals) >= release.policy.min_approvals:
            self._take_effect(release, rollout, pending, event.at)

    @staticmethod
    def _take_effect(release: ReleaseState, rollout: RolloutState, change: RolloutChange, at: datetime) -> None:
        change.effective_at = at
        if change.weight is not None:
            rollout.weight = change.weight
            rollout.weights.append((at, change.weight))

    def _rollout_aborted(self, event: Event) -> None:
        """An abort needs no approval (it goes back to what was approved); it is signed by the rollout's requester,
        an approver or break_glass principal of the stage, or a watcher naming the rule that was broken."""
        release, rollout = self._rolling(event)
        if rollout.ended_at is not None or release.status in (
            ReleaseStatus.REJECTED,
            ReleaseStatus.LIVE,
            ReleaseStatus.SUPERSEDED,
            ReleaseStatus.STOPPED,
            ReleaseStatus.ABORTED,
        ):
            raise RuleBroken(f"release {release.id}'s rollout is over ({release.status}); there is nothing to abort")
        policy = release.policy
        watchers = self.in_force().watchers
        may = {release.requested_by, *policy.approvers, *policy.break_glass, *watchers}
        if event.by not in may:
            raise RuleBroken(
                f"{event.by} may not abort release {release.id}'s rollout: its requester, {release.stage}'s "
                f"approvers and break_glass principals, and the watchers may ({', '.join(sorted(may))})"
            )
        rule = event.data.get("rule")
        if event.by in watchers and event.by not in may - set(watchers) and not rule:
            raise RuleBroken(f"{event.by} aborts rollouts as a watcher, and a watcher's abort names the rule broken")
        release.status = ReleaseStatus.ABORTED
        if release.deployment is not None:
            release.deployment.status, release.deployment.owner = DeploymentStatus.ABORTED, None
            release.deployment.finished_at = event.at
        rollout.ended_at, rollout.outcome, rollout.aborted_by = event.at, "aborted", event.by
        reason, figures = event.data.get("reason"), event.data.get("figures")
        rollout.abort_reason = None if reason is None else str(reason)
        rollout.abort_rule = None if rule is None else str(rule)
        rollout.abort_figures = dict(figures) if isinstance(figures, dict) else None
        if rollout.started_at is not None:
            rollout.weights.append((event.at, 0))
        self.rollouts.pop(release.stage, None)


def _check_training(stage: str, policy: StagePolicy, shipment: Shipment) -> None:
    """A guarded stage (one with approvers) takes no model trained without a sandbox or from a dirty tree, unless
    its recorded policy says `allow_unsandboxed` / `allow_dirty`."""
    if not policy.needs_approval:
        return
    if shipment.training_sandbox == "none" and not policy.allow_unsandboxed:
        raise RuleBroken(
            f"build {shipment.short} was trained without a sandbox (its signed provenance says so), and {stage} "
            "takes only sandboxed training",
            hint='Train where bubblewrap runs (sandbox = "required" makes sure), build again; or allow it for the '
            f"stage by policy: allow_unsandboxed = true in [release.{stage}], proposed and approved.",
        )
    if shipment.source_dirty and not policy.allow_dirty:
        raise RuleBroken(
            f"build {shipment.short} was trained from a source tree with uncommitted changes, and {stage} takes only "
            "models trained from a commit",
            hint=f"Commit, train and build again; or allow it by policy: allow_dirty = true in [release.{stage}], "
            "proposed and approved.",
        )
