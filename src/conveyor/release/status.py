"""The words of the ledger: what kind of event, release, decision and status a thing is."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Every event of the ledger; each is signed by the key of whoever (or whatever deployer) acted."""

    POLICY_ADOPTED = "policy.adopted"
    POLICY_PROPOSED = "policy.proposed"
    POLICY_APPROVED = "policy.approved"
    RELEASE_REQUESTED = "release.requested"
    RELEASE_APPROVED = "release.approved"
    RELEASE_REJECTED = "release.rejected"
    DEPLOYMENT_CLAIMED = "deployment.claimed"
    DEPLOYMENT_STEP = "deployment.step"
    DEPLOYMENT_FAILED = "deployment.failed"
    RELEASE_LIVE = "release.live"
    STAGE_STOPPED = "stage.stopped"


class ReleaseKind(StrEnum):
    """How a release came to be: a build released, a live release promoted, or a stage rolled back."""

    RELEASE = "release"
    PROMOTION = "promotion"
    ROLLBACK = "rollback"


class ReleaseStatus(StrEnum):
    """pending → approved → deploying → live → superseded (or stopped: `release stop`); or rejected, expired,
    failed (resumable)."""

    PENDING = "pending"
    APPROVED = "approved"
    DEPLOYING = "deploying"
    LIVE = "live"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class DeploymentStatus(StrEnum):
    """A release's one deployment: running (possibly resumed), failed, live, superseded, stopped."""

    RUNNING = "running"
    FAILED = "failed"
    LIVE = "live"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
