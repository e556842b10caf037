"""Releases as people and machines see them (`releases show --json`, `history --json`), from the folded state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from conveyor.release.state import ALIAS_STEP, LedgerState, ReleaseState
from conveyor.release.status import ReleaseKind, ReleaseStatus


@dataclass(frozen=True)
class Verification:
    """Whether the ledger's events verified, and if not, which event failed and why."""

    ok: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReleaseView:
    """A release: what it ships, under which recorded policy, who signed each step, where it went."""

    id: int
    stage: str
    status: ReleaseStatus
    kind: ReleaseKind
    target: str
    build: str
    model: dict[str, Any]
    image_digest: str | None
    attestations: list[dict[str, str]]
    requested_by: str
    requested_key: str
    requested_at: datetime
    min_approvals: int
    policy: dict[str, Any]
    policy_digest: str
    expires_at: datetime | None
    source_release: int | None
    break_glass: bool
    verification: Verification
    approvals: list[dict[str, Any]] = field(default_factory=list)
    signers: list[dict[str, Any]] = field(default_factory=list)
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
    """One stretch of time during which a release was live in a stage, with who signed it there."""

    stage: str
    release: int
    kind: ReleaseKind
    build: str
    model: dict[str, Any]
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
    signers: list[dict[str, Any]]
    verification: Verification

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def release_view(release: ReleaseState, now: datetime, verification: Verification) -> ReleaseView:
    shipment = release.shipment
    deployment = None
    if release.deployment is not None:
        d = release.deployment
        alias = d.steps.get(ALIAS_STEP)
        deployment = {
            "status": str(d.status), "started_at": d.started_at, "started_by": d.started_by,
            "finished_at": d.finished_at, "live_from": d.live_from, "live_until": d.live_until,
            "reference": d.reference, "steps": list(d.steps), "results": {k: v.to_dict() for k, v in d.steps.items()},
            "alias": alias.reference if alias else None, "error": d.error, "claims": d.claims,
        }  # fmt: skip
    return ReleaseView(
        id=release.id, stage=release.stage, status=release.status_at(now), kind=release.kind,
        target=release.policy.target, build=shipment.package_digest,
        model={"name": shipment.model_name, "version": shipment.model_version, "env": release.model_env},
        image_digest=shipment.image_digest,
        attestations=[{"digest": a.digest, "predicate_type": a.predicate_type} for a in shipment.attestations],
        requested_by=release.requested_by, requested_key=release.requested_key, requested_at=release.requested_at,
        min_approvals=0 if release.break_glass else release.policy.min_approvals, policy=release.policy.to_json(),
        policy_digest=release.policy.digest, expires_at=release.expires_at, source_release=release.source_release,
        break_glass=release.break_glass, verification=verification,
        approvals=[d.to_dict() for d in release.decisions], signers=[s.to_dict() for s in release.signatures],
        deployment=deployment, error=release.deployment.error if release.deployment else None,
    )  # fmt: skip


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
                stage=stage, release=release.id, kind=release.kind, build=release.shipment.package_digest,
                model={"name": release.shipment.model_name, "version": release.shipment.model_version,
                       "env": release.model_env},
                image_digest=release.shipment.image_digest,
                attestations=[a.digest for a in release.shipment.attestations], reference=d.reference,
                live_from=d.live_from, live_until=d.live_until, requested_by=release.requested_by,
                approved_by=release.approved_by, deployed_by=d.started_by, source_release=release.source_release,
                break_glass=release.break_glass, signers=[s.to_dict() for s in release.signatures],
                verification=verification,
            )
        )  # fmt: skip
    return sorted(entries, key=lambda e: (e.live_from, e.release))
