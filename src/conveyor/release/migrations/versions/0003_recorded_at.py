"""The ledger server's own time beside each event's signed time (PostgreSQL): a signer's clock that is wrong shows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("recorded_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    op.drop_column("events", "recorded_at")
