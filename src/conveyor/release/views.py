"""Releases as people and machines see them (`releases show --json`, `history --json`), from the folded state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING

from conveyor.release.state import ALIAS_STEP, LedgerState, ReleaseState

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from conveyor.release.audit import ChainReport
    from conveyor.release.policy import StagePolicy
    from conveyor.release.rollouts import RolloutState
    from conveyor.release.status import ReleaseKind, ReleaseStatus
    from conveyor.release.targets.base import StepResult


@dataclass(frozen=True)
class Verification:
    """Whether the ledger's events verified, and if not, which event failed and why."""

    ok: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ModelRef:
    """The registered model a release ships, and the environment whose registry holds it."""

    name: str | None
    version: str | None
    env: str | None

    def label(self) -> str:
        """`NAME/VERSION`, or `-` for a package without a registered model."""
        return f"{self.name}/{self.version}" if self.name else "-"


@dataclass(frozen=True)
class AttestationRef:
    """A signed attestation the release ships: its DSSE envelope's digest and the in-toto predicate type."""

    digest: str
    predicate_type: str


@dataclass(frozen=True)
class DecisionView:
    """An approval or rejection of a release by a principal, with the key that signed it."""

    actor: str
    key: str
    decision: str
    comment: str | None
    at: datetime
    seq: int


@dataclass(frozen=True)
class SignerView:
    """One signed event of a release: which event, by whom, with which key, when."""

    seq: int
    event: str
    by: str
    key: str
    at: datetime


@dataclass(frozen=True)
class DeploymentView:
    """The deployment of a release: who ran it, when it went live, what each step did."""

    status: str
    started_at: datetime
    started_by: str
    finished_at: datetime | None
    live_from: datetime | None
    live_until: datetime | None
    reference: str | None
    steps: list[str]
    results: dict[str, StepResult]
    alias: str | None
    error: str | None
    claims: int
    stopped_by: str | None = None
    stop_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["results"] = {name: result.to_dict() for name, result in self.results.items()}
        return data


def _model(release: ReleaseState) -> ModelRef:
    return ModelRef(release.shipment.model_name, release.shipment.model_version, release.model_env)


def _signers(release: ReleaseState) -> list[SignerView]:
    return [SignerView(s.seq, str(s.kind), s.principal, s.key, s.at) for s in release.signatures]


@dataclass
class ReleaseView:
    """A release: what it ships, under which recorded policy, who signed each step, where it went."""

    id: int
    stage: str
    status: ReleaseStatus
    kind: ReleaseKind
    target: str
    build: str
    model: ModelRef
    image_digest: str | None
    attestations: list[AttestationRef]
    requested_by: str
    requested_key: str
    requested_at: datetime
    min_approvals: int
    policy: StagePolicy
    policy_digest: str  # the stage's rules ([release.STAGE]) as recorded with the request
    expires_at: datetime | None
    source_release: int | None
    break_glass: bool
    verification: Verification
    approvals: list[DecisionView] = field(default_factory=list)
    signers: list[SignerView] = field(default_factory=list)
    deployment: DeploymentView | None = None
    error: str | None = None
    policy_set: str | None = None  # the whole policy in force at the request: what `audit verify` calls "policy"
    rollout: RolloutState | None = None  # a canary or shadow: its weights over time, changes, outcome

    @property
    def approved_by(self) -> list[str]:
        return [a.actor for a in self.approvals if a.decision == "approve"]

    def to_dict(self) -> dict[str, object]:
        """The JSON form (`releases show --json`)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data.update(
            model=asdict(self.model),
            attestations=[asdict(a) for a in self.attestations],
            policy=self.policy.to_json(),
            verification=self.verification.to_dict(),
            approvals=[asdict(a) for a in self.approvals],
            signers=[asdict(s) for s in self.signers],
            deployment=self.deployment.to_dict() if self.deployment else None,
            approved_by=self.approved_by,
            rollout=self.rollout.to_dict() if self.rollout else None,
        )
        return data


@dataclass
class HistoryEntry:
    """One stretch of time during which a release was live in a stage, with who signed it there."""

    stage: str
    release: int
    kind: ReleaseKind
    build: str
    model: ModelRef
    image_digest: str | None
    attestations: list[str]
    reference: str | None
    live_from: datetime
    live_until: datetime | None
    requested_by: str
    approved_by: list[str]
    deployed_by: str
    source_release: int | None
    break_glass: bool
    signers: list[SignerView]
    verification: Verification
    stopped_by: str | None = None  # set when the stretch ended by `release stop` (at `live_until`)
    stop_reason: str | None = None
    rollout: RolloutState | None = None  # how this release came in, when it came as a canary or shadow
    beside: list[RolloutState] = field(default_factory=list)  # rollouts that ran beside it (aborted ones too)

    def to_dict(self) -> dict[str, object]:
        """The JSON form (`history --json`)."""
        data = asdict(self)
        data["rollout"] = self.rollout.to_dict() if self.rollout else None
        data["beside"] = [rollout.to_dict() for rollout in self.beside]
        return data


def release_view(release: ReleaseState, now: datetime, verification: Verification) -> ReleaseView:
    shipment, decisions = release.shipment, release.decisions
    deployment = None
    if release.deployment is not None:
        d = release.deployment
        alias = d.steps.get(ALIAS_STEP)
        deployment = DeploymentView(
            status=str(d.status),
            started_at=d.started_at,
            started_by=d.started_by,
            finished_at=d.finished_at,
            live_from=d.live_from,
            live_until=d.live_until,
            reference=d.reference,
            steps=list(d.steps),
            results=dict(d.steps),
            alias=alias.reference if alias else None,
            error=d.error,
            claims=d.claims,
            stopped_by=d.stopped_by,
            stop_reason=d.stop_reason,
        )
    return ReleaseView(
        id=release.id,
        stage=release.stage,
        status=release.status_at(now),
        kind=release.kind,
        target=release.policy.target,
        build=shipment.package_digest,
        model=_model(release),
        image_digest=shipment.image_digest,
        attestations=[AttestationRef(a.digest, a.predicate_type) for a in shipment.attestations],
        requested_by=release.requested_by,
        requested_key=release.requested_key,
        requested_at=release.requested_at,
        min_approvals=0 if release.break_glass else release.policy.min_approvals,
        policy=release.policy,
        policy_digest=release.policy.digest,
        expires_at=release.expires_at,
        source_release=release.source_release,
        break_glass=release.break_glass,
        verification=verification,
        approvals=[DecisionView(d.principal, d.key, str(d.decision), d.comment, d.at, d.seq) for d in decisions],
        signers=_signers(release),
        deployment=deployment,
        policy_set=release.policy_set,
        error=release.deployment.error if release.deployment else None,
        rollout=release.rollout,
    )


def history_entries(
    state: LedgerState, stage: str, verification: Verification, at: datetime | None = None
) -> list[HistoryEntry]:
    """What was live in `stage`, oldest first; with `at`, only what was live at that moment."""
    entries = []
    for release in state.releases.values():
        d = release.deployment
        if release.stage != stage or d is None or d.live_from is None:
            continue
        if at is not None and not (d.live_from <= at and (d.live_until is None or d.live_until > at)):
            continue
        entries.append(
            HistoryEntry(
                stage=stage,
                release=release.id,
                kind=release.kind,
                build=release.shipment.package_digest,
                model=_model(release),
                image_digest=release.shipment.image_digest,
                attestations=[a.digest for a in release.shipment.attestations],
                reference=d.reference,
                live_from=d.live_from,
                live_until=d.live_until,
                requested_by=release.requested_by,
                approved_by=release.approved_by,
                deployed_by=d.started_by,
                source_release=release.source_release,
                break_glass=release.break_glass,
                signers=_signers(release),
                verification=verification,
                stopped_by=d.stopped_by,
                stop_reason=d.stop_reason,
                rollout=release.rollout,
                beside=_beside(state, release.id),
            )
        )
    return sorted(entries, key=lambda e: (e.live_from, e.release))


def _beside(state: LedgerState, live: int) -> list[RolloutState]:
    """The rollouts that ran beside release `live`, in order."""
    found = [r.rollout for r in state.releases.values() if r.rollout is not None and r.rollout.beside == live]
    return sorted(found, key=lambda rollout: rollout.release)


def stopped_entry(state: LedgerState, stage: str, verification: Verification, at: datetime) -> HistoryEntry | None:
    """The stretch of `stage` that `release stop` ended last before `at`, when nothing went live since."""
    if history_entries(state, stage, verification, at):
        return None
    ended = [e for e in history_entries(state, stage, verification) if e.live_until and e.live_until <= at]
    last = max(ended, key=lambda e: (e.live_until or e.live_from, e.release), default=None)
    return last if last is not None and last.stopped_by else None


@dataclass(frozen=True)
class LedgerSnapshot:
    """One verified reading of the ledger: every release and stage history as of `now`, from the same events.

    What `releases list|show`, `history` and the dashboard read; `head` (`SEQ:HASH`) names the reading."""

    state: LedgerState
    verification: Verification
    report: ChainReport
    now: datetime

    @property
    def head(self) -> str:
        return self.report.checkpoint

    def releases(
        self,
        stage: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        build: str | None = None,
    ) -> list[ReleaseView]:
        """Releases newest first, of one stage, status and build when given, `limit` of them from `offset` (only
        those are made into views; with a limit, releases are read from a kept prefix only until it is reached)."""
        releases = self.state.releases
        newest_first = releases.newest_first() if limit is not None else reversed(list(releases.values()))
        end = None if limit is None else offset + limit
        chosen = islice(self._matching(newest_first, stage, status, build), offset, end)
        return [release_view(r, self.now, self.verification) for r in chosen]

    def count(self, stage: str | None = None, status: str | None = None, build: str | None = None) -> int:
        return sum(1 for _ in self._matching(self.state.releases.values(), stage, status, build))

    def _matching(
        self, releases: Iterable[ReleaseState], stage: str | None, status: str | None, build: str | None
    ) -> Iterator[ReleaseState]:
        for r in releases:
            if stage is not None and r.stage != stage:
                continue
            if build is not None and r.shipment.package_digest != build:
                continue
            if status is None or r.status_at(self.now) == status:
                yield r

    def release(self, release_id: int) -> ReleaseView | None:
        found = self.state.releases.get(release_id)
        return None if found is None else release_view(found, self.now, self.verification)

    def live(self, stage: str) -> ReleaseView | None:
        """The release live in `stage` now, if any."""
        entries = history_entries(self.state, stage, self.verification, self.now)
        return self.release(entries[-1].release) if entries else None

    def rolling_out(self, stage: str) -> ReleaseView | None:
        """The release rolling out in `stage` (or asked to, not yet rejected or expired), if any."""
        found = self.state.rollout_in(stage, self.now)
        return None if found is None else release_view(found, self.now, self.verification)

    def history(self, stage: str, at: datetime | None = None) -> list[HistoryEntry]:
        return history_entries(self.state, stage, self.verification, at)

    def stopped(self, stage: str, at: datetime | None = None) -> HistoryEntry | None:
        """When nothing is live in `stage` at `at` (default now) because it was stopped: the stretch that ended."""
        return stopped_entry(self.state, stage, self.verification, at or self.now)
