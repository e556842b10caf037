"""The release ledger: a SQL database (SQLite in the project by default, PostgreSQL for a team), migrated on open."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from conveyor.errors import CheckFailed, ConfigError
from conveyor.release.audit import ChainReport, canonical, entry_hash, verify_chain
from conveyor.release.tables import AuditEntryRow, AuditHeadRow

if TYPE_CHECKING:
    from conveyor.config import Project

URL_VARIABLE = "CONVEYOR_LEDGER_URL"
MIGRATIONS = Path(__file__).parent / "migrations"
Clock = Callable[[], datetime]
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def utc_now() -> datetime:
    return datetime.now(UTC)


def naive_utc(moment: datetime) -> datetime:
    """Stored form of a time: UTC without tzinfo (aware times are converted, naive ones taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def ledger_url(project: Project) -> str:
    """`$CONVEYOR_LEDGER_URL`, else `[ledger] url`, else SQLite at `.conveyor/ledger.db`."""
    url = os.environ.get(URL_VARIABLE) or project.config.ledger.url
    if url:
        return url
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{project.state_dir / 'ledger.db'}"


def _sqlite_serialized(engine: Engine) -> None:
    """SQLite: every transaction takes the write lock at BEGIN, so read-then-write never races."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Ledger:
    """Builds, releases, approvals, deployments and the hash-chained audit log of one project (or team)."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, project: Project, *, url: str | None = None, clock: Clock | None = None) -> Ledger:
        """The project's ledger (`url` overrides the configured one), migrated to the current schema."""
        return cls.from_url(url or ledger_url(project), clock=clock)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Ledger:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(
                f"ledger URL {url!r} is not a SQLAlchemy URL",
                hint=f"Use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB ([ledger] url or {URL_VARIABLE}).",
            ) from None
        shown = parsed.render_as_string(hide_password=True)
        try:
            if parsed.get_backend_name() == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(parsed, connect_args={"timeout": 30})
                _sqlite_serialized(engine)
            else:
                engine = create_engine(parsed, pool_pre_ping=True)
        except NoSuchModuleError:
            raise ConfigError(
                f"no database driver for ledger URL {shown}",
                hint="For PostgreSQL install conveyor[postgres] and write postgresql+psycopg://...",
            ) from None
        ledger = cls(engine, clock or utc_now)
        try:
            ledger.migrate()
        except OperationalError as exc:
            raise CheckFailed(
                f"cannot open the ledger at {shown}: {str(exc.orig).strip().splitlines()[0]}",
                hint=f"Check that the database is running and reachable ([ledger] url or {URL_VARIABLE}).",
            ) from None
        return ledger

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (once per process and URL)."""
        key = self.engine.url.render_as_string(hide_password=False)
        with _migrate_lock:
            if key in _migrated:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(7158311)"))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            _migrated.add(key)

    def close(self) -> None:
        self.engine.dispose()

    def now(self) -> datetime:
        return naive_utc(self.clock())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    # --- audit -------------------------------------------------------------------------------------------
    def serialize(self, session: Session) -> AuditHeadRow:
        """Lock the audit head now: writers that call this first run one after another."""
        return session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).scalar_one()

    def audit(self, session: Session, actor: str, action: str, subject: str, **details: Any) -> AuditEntryRow:
        """Append an entry in `session`'s transaction; the head row is locked so entries form one chain."""
        head = self.serialize(session)
        at = self.now()
        body = canonical(details)
        seq = head.seq + 1
        digest = entry_hash(seq, at, actor, action, subject, body, head.hash)
        entry = AuditEntryRow(
            seq=seq, at=at, actor=actor, action=action, subject=subject, details=body, prev_hash=head.hash, hash=digest
        )
        session.add(entry)
        head.seq, head.hash = seq, digest
        session.flush()
        return entry

    def audit_entries(self, limit: int | None = None, subject: str | None = None) -> list[AuditEntryRow]:
        with self.sessions() as session:
            query = select(AuditEntryRow).order_by(AuditEntryRow.seq)
            if subject:
                query = query.where(AuditEntryRow.subject == subject)
            rows = list(session.execute(query).scalars())
        return rows[-limit:] if limit else rows

    def verify_audit(self) -> ChainReport:
        """Check the whole chain; `ok` is False at the first edited, deleted or inserted entry."""
        with self.sessions() as session:
            rows = list(session.execute(select(AuditEntryRow).order_by(AuditEntryRow.seq)).scalars())
            head = session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1)).scalar_one()
            return verify_chain(rows, head.seq, head.hash)
