"""Alembic environment: conveyor passes an open connection in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context

from conveyor.release.tables import Base

VERSION_TABLE = "conveyor_ledger_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the ledger migrations run through conveyor.release.Ledger.open, which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
