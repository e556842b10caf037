"""The ledger's tables: the chain of signed events, its head, and a table of releases derived from the events.

The events are the ledger. `releases` is kept beside them for queries (a dashboard, `releases list --status`),
rewritten with every event in the same transaction; nothing decides by it, and a row that disagrees with the
events is reported as an edit. Times are naive UTC. The schema is created by the Alembic migrations in
`migrations/`; these classes must match them. (Migration 0002 renamed the unsigned tables of 0001 to `legacy_*`;
they are kept, never read.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EventRow(Base):
    """One signed event; `payload` is the canonical JSON that `hash` and `signature` cover."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(40))
    release_id: Mapped[int | None] = mapped_column(Integer, index=True)
    principal: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(120))
    payload: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # the ledger server's clock when the row was written (PostgreSQL; not signed: a witness to the signer's `at`)
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class EventHeadRow(Base):
    """The chain's head (last seq and hash): one row, locked by every writer, so the chain stays one line."""

    __tablename__ = "event_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class ReleaseRow(Base):
    """A release as its events say it is now (derived; never trusted)."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stage: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    build: Mapped[str] = mapped_column(String(80))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
