"""The ledger's tables: builds, releases, approvals, deployments with their steps, and the hash-chained audit log.

Times are stored as naive UTC (the same on SQLite and PostgreSQL). The schema is created by the Alembic
migrations in `migrations/`; these classes must match them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class BuildRow(Base):
    """A build record (build.json) as it was when a release first named it."""

    __tablename__ = "builds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(80), unique=True)
    project: Mapped[str] = mapped_column(String(80))
    env: Mapped[str | None] = mapped_column(String(80))
    path: Mapped[str] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(40))
    image_digest: Mapped[str | None] = mapped_column(String(80))
    tests_ok: Mapped[bool] = mapped_column(Boolean)
    gates_ok: Mapped[bool] = mapped_column(Boolean)
    record: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(200))


class ReleaseRow(Base):
    """One request to put a build into a stage: pending → approved → deploying → live → superseded."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(80), index=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id"))
    kind: Mapped[str] = mapped_column(String(20))
    source_release_id: Mapped[int | None] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    min_approvals: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    deployer: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)


class ApprovalRow(Base):
    """An approver's decision on a release; one per person and release."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("release_id", "actor", name="uq_approvals_release_actor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)


class DeploymentRow(Base):
    """The one deployment of a release (unique per release: a release is never deployed twice)."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), unique=True)
    stage: Mapped[str] = mapped_column(String(80), index=True)
    target: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    started_by: Mapped[str] = mapped_column(String(200))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    live_from: Mapped[datetime | None] = mapped_column(DateTime)
    live_until: Mapped[datetime | None] = mapped_column(DateTime)
    reference: Mapped[str | None] = mapped_column(Text)
    handle: Mapped[str | None] = mapped_column(Text)
    alias: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class DeploymentStepRow(Base):
    """A deployment step that completed; recorded once, so a resumed deployment skips it."""

    __tablename__ = "deployment_steps"
    __table_args__ = (UniqueConstraint("deployment_id", "name", name="uq_steps_deployment_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime)
    detail: Mapped[str] = mapped_column(Text)


class AuditEntryRow(Base):
    """An append-only audit entry; `hash` covers its content and `prev_hash` (the previous entry's hash)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's head (last seq and hash): one row, locked by every writer, so the chain stays a line."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
