"""The release ledger: builds, releases, approvals, deployments, deployment steps, audit log and its head.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False, unique=True),
        sa.Column("project", sa.String(80), nullable=False),
        sa.Column("env", sa.String(80)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("model_name", sa.String(200)),
        sa.Column("model_version", sa.String(40)),
        sa.Column("image_digest", sa.String(80)),
        sa.Column("tests_ok", sa.Boolean, nullable=False),
        sa.Column("gates_ok", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("stage", sa.String(80), nullable=False, index=True),
        sa.Column("build_id", sa.Integer, sa.ForeignKey("builds.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source_release_id", sa.Integer),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
        sa.Column("min_approvals", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("deployer", sa.String(200)),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("release_id", "actor", name="uq_approvals_release_actor"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False, unique=True),
        sa.Column("stage", sa.String(80), nullable=False, index=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("live_from", sa.DateTime),
        sa.Column("live_until", sa.DateTime),
        sa.Column("reference", sa.Text),
        sa.Column("handle", sa.Text),
        sa.Column("alias", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "deployment_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), nullable=False, index=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.UniqueConstraint("deployment_id", "name", name="uq_steps_deployment_name"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    for table in ("audit_head", "audit_log", "deployment_steps", "deployments", "approvals", "releases", "builds"):
        op.drop_table(table)
