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
    ROLLOUT_STARTED = "rollout.started"
    ROLLOUT_CHANGED = "rollout.changed"
    ROLLOUT_APPROVED = "rollout.approved"
    ROLLOUT_ABORTED = "rollout.aborted"


class ReleaseKind(StrEnum):
    """How a release came to be: a build released, a live release promoted, or a stage rolled back."""

    RELEASE = "release"
    PROMOTION = "promotion"
    ROLLBACK = "rollback"


class ReleaseStatus(StrEnum):
    """pending → approved → deploying → live → superseded (or stopped: `release stop`); or rejected, expired,
    failed (resumable). A rollout goes deploying → rolling_out (beside the live release, at a weight or as a
    shadow) → deploying → live when completed, or aborted."""

    PENDING = "pending"
    APPROVED = "approved"
    DEPLOYING = "deploying"
    LIVE = "live"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"
    ROLLING_OUT = "rolling_out"
    ABORTED = "aborted"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class DeploymentStatus(StrEnum):
    """A release's one deployment: running (possibly resumed), failed, live, superseded, stopped; a rollout's
    also rolling_out (serving its share beside the live release) and aborted."""

    RUNNING = "running"
    FAILED = "failed"
    LIVE = "live"
    SUPERSEDED = "superseded"
    STOPPED = "stopped"
    ROLLING_OUT = "rolling_out"
    ABORTED = "aborted"


class RolloutMode(StrEnum):
    """How a candidate serves beside the live release: a share of requests (canary), or a copy of every request
    whose answers are recorded and never returned (shadow)."""

    CANARY = "canary"
    SHADOW = "shadow"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
