"""Signed events: the ledger becomes a chain of events signed with SSH keys; the unsigned tables are kept aside.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNSIGNED = ("builds", "releases", "approvals", "deployments", "deployment_steps", "audit_log", "audit_head")


def upgrade() -> None:
    # Rows written before events were signed cannot be made trustworthy: they are kept, renamed, and never read.
    for table in UNSIGNED:
        op.rename_table(table, f"legacy_{table}")
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("release_id", sa.Integer),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_release_id", "events", ["release_id"])
    head = op.create_table(
        "event_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("stage", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("build", sa.String(80), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("event_head")
    op.drop_index("ix_events_release_id", "events")
    op.drop_table("events")
    for table in UNSIGNED:
        op.rename_table(f"legacy_{table}", table)
