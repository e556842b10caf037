"""Alembic migrations of the release ledger (run automatically when a ledger is opened)."""
