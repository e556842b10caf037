"""The release ledger: a chain of signed events in a SQL database (SQLite in the project by default, PostgreSQL
for a team), migrated on open.

Every write takes the chain's head row first (`SELECT … FOR UPDATE`; on SQLite, `BEGIN IMMEDIATE`), verifies and
folds the chain (all of it the first time a Ledger object reads, then only the events appended since), checks the
new event against the rules, signs it and appends it, all in one transaction. So writers run one after another,
each on verified state, and two of them can never both win the same step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from conveyor.errors import CheckFailed, ConfigError
from conveyor.release.audit import (
    MAX_CLOCK_SKEW,
    ChainReport,
    Verified,
    Verifier,
    edited_rows,
    missing_checkpoint,
    parse_checkpoint,
    verify_events,
    verify_more,
)
from conveyor.release.events import Event, SignedEvent, sign_event, verify_signature
from conveyor.release.prefix_file import PrefixFile
from conveyor.release.tables import EventHeadRow, EventRow, ReleaseRow
from conveyor.trust import AllowedSigners

if TYPE_CHECKING:
    from conveyor.config import Project
    from conveyor.release.release_map import ReleaseMap
    from conveyor.release.state import LedgerState, ReleaseState
    from conveyor.release.status import EventKind
    from conveyor.trust import Identity

URL_VARIABLE = "CONVEYOR_LEDGER_URL"
SEEN_FILE = "ledger-seen"  # in the project's .conveyor/, beside (not inside) the SQLite ledger
PREFIX_FILE = "ledger-verified.db"  # beside it: what this checkout verified, for the next process to start from
OLD_PREFIX_FILE = "ledger-verified"  # the whole state in one pickle (format 1): never read, removed on open
KEEP_EVERY = 100  # events verified past the kept prefix before it is written again
NEW_LEDGER_ENV = "CONVEYOR_NEW_LEDGER"  # =1: start a new ledger on purpose, forgetting the head seen before
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


CHECKPOINT_ENV = "CONVEYOR_LEDGER_CHECKPOINT"
REPAIR_HINT = (
    "`conveyor audit verify` names the first bad event. Restore the ledger database from a backup taken before it; "
    "nothing more is written to a ledger that does not verify."
)


class LedgerBroken(CheckFailed):
    """The chain of signed events does not verify (or the releases table was edited): nothing is written."""


@dataclass
class _Prefix:
    """The events this Ledger object has verified (up to `seq`, whose hash is `digest`) and the verifier holding
    their folded state: a later read or write verifies only the events appended since."""

    verifier: Verifier
    seq: int
    digest: str


class Ledger:
    """The signed, chained events of one project's (or team's) releases, and the state they fold into.

    The first read or write through a Ledger object verifies the whole chain; later ones through the same object
    verify only the events appended since (after checking that the newest event it verified is still in place, and
    the published and seen checkpoints), so a long-lived process (`conveyor ui`, `rollout watch`, a script using
    the API) pays O(new events). An edit of an older event is found by the next new Ledger (every CLI command opens
    one) and by `verify_audit`, which always walks the whole chain.
    """

    def __init__(self, engine: Engine, clock: Clock = utc_now, seen: Path | None = None) -> None:
        self.engine = engine
        self._prefix: _Prefix | None = None
        self._lock = threading.RLock()
        # this checkout's record of the furthest head it has seen (`SEQ:HASH`, kept outside the database): a
        # ledger deleted, emptied or swapped for an older copy no longer holds it, and is refused
        self.seen = seen
        self.prefix_file: PrefixFile | None = None  # `Ledger.open` sets it: the verified prefix between processes
        self._kept_at: int | None = None  # the event the prefix file ends at, as far as this object knows
        self._active = threading.local()  # the session this thread reads or writes in, for a kept release's walk
        self.clock = clock
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # a reading sees one snapshot of the database: on PostgreSQL a writer may commit between its statements
        # (on SQLite every transaction, reads included, takes the write lock at BEGIN)
        consistent = engine.execution_options(isolation_level="REPEATABLE READ")
        self.readings = sessionmaker(
            consistent if engine.dialect.name == "postgresql" else engine, expire_on_commit=False
        )
        # a checkpoint published earlier (`audit verify` prints it): every read and write checks it is still held
        self.checkpoint = os.environ.get(CHECKPOINT_ENV) or None

    @classmethod
    def open(cls, project: Project, *, url: str | None = None, clock: Clock | None = None) -> Ledger:
        """The project's ledger (`url` overrides the configured one), migrated to the current schema."""
        ledger = cls.from_url(url or ledger_url(project), clock=clock)
        ledger.seen = project.state_dir / SEEN_FILE
        ledger.prefix_file = PrefixFile(project.state_dir / PREFIX_FILE, ledger.url)
        (project.state_dir / OLD_PREFIX_FILE).unlink(missing_ok=True)
        if os.environ.get(NEW_LEDGER_ENV) == "1":
            ledger.seen.unlink(missing_ok=True)
            ledger.prefix_file.forget()
        return ledger

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
                    if not Path(parsed.database).is_file() or Path(parsed.database).stat().st_size == 0:
                        _migrated.discard(parsed.render_as_string(hide_password=False))  # a new file: migrate it
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
        except DatabaseError as exc:  # not a database at all: a corrupt or foreign file
            raise ConfigError(
                f"the ledger at {shown} cannot be read as a database: {str(exc.orig).strip().splitlines()[0]}",
                hint="Restore the ledger from its backup or its team database; conveyor never replaces a ledger. "
                "Move the file aside only to start a new ledger on purpose.",
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

    # --- reading -----------------------------------------------------------------------------------------
    def _verify(self, session: Session, expect: str | None = None, *, whole: bool = False) -> Verified:
        with self._in(session):
            return self._verify_in(session, expect, whole=whole)

    @contextmanager
    def _in(self, session: Session) -> Iterator[None]:
        outer = getattr(self._active, "session", None)
        self._active.session = session
        try:
            yield
        finally:
            self._active.session = outer

    def _verify_in(self, session: Session, expect: str | None, *, whole: bool) -> Verified:
        head = session.execute(select(EventHeadRow).where(EventHeadRow.id == 1)).scalar_one()
        seen = self._seen_head()
        if not whole:
            if self._prefix is None:
                self._prefix = self._kept_prefix()
            found = self._verify_new(session, head, [c for c in (expect or self.checkpoint, seen) if c])
            if found is not None:
                return found
        self._prefix = None
        rows = list(session.execute(select(EventRow).order_by(EventRow.seq)).scalars())
        verified = verify_events(rows, head.seq, head.hash, now=self.clock())
        for checkpoint, seen_here in ((expect or self.checkpoint, False), (seen, True)):
            problem = missing_checkpoint(rows, checkpoint) if checkpoint and verified.report.ok else None
            if problem and seen_here and checkpoint:
                problem = (
                    f"this checkout saw the ledger at event {checkpoint.split(':')[0]} before; now {problem} (to "
                    f"start a new ledger on purpose: {NEW_LEDGER_ENV}=1)"
                )
            if problem:
                verified.report = replace(verified.report, ok=False, first_bad=None, problem=problem)
        if verified.report.ok:
            table = list(session.execute(select(ReleaseRow)).scalars())
            edits = edited_rows(verified.state, table)
            if edits:
                report = verified.report
                verified.report = ChainReport(
                    False, report.entries, report.head, edited_rows=edits, policy=report.policy
                )
        if verified.report.ok and rows:
            self._remember(rows[-1].seq, rows[-1].hash, seen)
        if verified.report.ok and verified.verifier is not None:
            self._prefix = _Prefix(verified.verifier, head.seq, head.hash)
        elif not verified.report.ok and self.prefix_file is not None:
            self.prefix_file.forget()  # a chain found broken: every reader walks it whole until it verifies again
            self._kept_at = None
        return verified

    def _kept_prefix(self) -> _Prefix | None:
        """The prefix a process of this checkout verified and kept before (`conveyor.release.prefix_file`)."""
        if self.prefix_file is None:
            return None
        kept = self.prefix_file.load()
        if kept is None:  # none, or one that may not be read (other code, another ledger, forged): this walk's
            self.prefix_file.forget()  # replaces it, not one 100 events on
            self._kept_at = None
            return None
        verifier, seq, digest = kept
        self._kept_at = seq
        verifier.state.releases.fallback = lambda: self._walked_releases(seq, digest)
        return _Prefix(verifier, seq, digest)

    def _walked_releases(self, seq: int, digest: str) -> ReleaseMap[ReleaseState]:
        """The releases as events 1..`seq` (the last one's hash `digest`) make them, from a walk of those events:
        for a kept release that could not be read (in the transaction this thread is in, if any)."""
        session = getattr(self._active, "session", None)
        with nullcontext(session) if session is not None else self.readings() as reading:
            rows = list(reading.execute(select(EventRow).where(EventRow.seq <= seq).order_by(EventRow.seq)).scalars())
        verified = verify_events(rows, seq, digest, now=self.clock())
        if not verified.report.ok:
            raise LedgerBroken(f"the ledger does not verify: {verified.report.trouble}", hint=REPAIR_HINT)
        return verified.state.releases

    def _keep(self) -> None:
        """Write the verified prefix for the next process once it is `KEEP_EVERY` events past the kept one."""
        prefix = self._prefix
        if self.prefix_file is None or prefix is None or not prefix.seq:
            return
        if self._kept_at is None:
            self._kept_at = self.prefix_file.seq()
        if self._kept_at is not None and 0 <= prefix.seq - self._kept_at < KEEP_EVERY:
            return
        if self.prefix_file.store(prefix.verifier, prefix.seq, prefix.digest):
            self._kept_at = prefix.seq

    def _verify_new(self, session: Session, head: EventHeadRow, checkpoints: list[str]) -> Verified | None:
        """The state moved on by the events appended since this object's verified prefix, or None when there is
        no prefix or anything is not as it should be (then the whole chain is walked, and its report names why)."""
        prefix, self._prefix = self._prefix, None  # kept again only once the new events verify
        if prefix is None or head.seq < prefix.seq:
            return None

        def stored_hash(seq: int) -> str | None:
            return session.execute(select(EventRow.hash).where(EventRow.seq == seq)).scalar_one_or_none()

        if prefix.seq and stored_hash(prefix.seq) != prefix.digest:
            return None  # the chain was rewritten from there (or replaced): the whole walk names the event
        for checkpoint in checkpoints:
            seq, digest = parse_checkpoint(checkpoint)
            if not (stored_hash(seq) or "-").startswith(digest):
                return None
        rows = list(session.execute(select(EventRow).where(EventRow.seq > prefix.seq).order_by(EventRow.seq)).scalars())
        prefix.verifier.reading_at(self.clock())
        verified = verify_more(prefix.verifier, rows, head.seq, head.hash)
        if not verified.report.ok:
            return None
        # the releases table: no row past the newest release, and the rows of the releases the new events name as
        # signed (one index probe each: a count of the rows is O(releases) on PostgreSQL). A row edited or deleted
        # elsewhere is found by the first reader whose events touch its release, and by `audit verify`.
        touched = {row.release_id for row in rows if row.release_id is not None}
        newest = session.execute(select(func.max(ReleaseRow.id))).scalar_one()
        table = list(session.execute(select(ReleaseRow).where(ReleaseRow.id.in_(touched))).scalars()) if touched else []
        if (newest or 0) != len(verified.state.releases) or edited_rows(verified.state, table, among=touched):
            return None
        if head.seq:
            self._remember(head.seq, head.hash, self._seen_head())
        self._prefix = _Prefix(prefix.verifier, head.seq, head.hash)
        return verified

    def _seen_head(self) -> str | None:
        if self.seen is None or not self.seen.is_file():
            return None
        return self.seen.read_text().strip() or None

    def _remember(self, seq: int, digest: str, seen: str | None) -> None:
        """Keep the furthest head this checkout has verified (never moved back)."""
        if self.seen is None or (seen and int(seen.split(":")[0]) >= seq):
            return
        self.seen.parent.mkdir(parents=True, exist_ok=True)
        partial = self.seen.with_name(self.seen.name + ".partial")
        partial.write_text(f"{seq}:{digest}\n")
        partial.replace(self.seen)

    def verified(self) -> Verified:
        """The state folded from the verified events, and what verification found. The state is this object's
        own and moves on with its later reads and writes: take what you need from it before writing."""
        with self._lock:
            with self.readings() as session:
                verified = self._verify(session)
            self._keep()  # after the reading: on SQLite a transaction holds the write lock
            return verified

    def verify_audit(self, expect: str | None = None) -> ChainReport:
        """Check every event (place in the chain, hash, signature, rules) and the releases table, the whole chain
        whatever was verified before; with `expect` (a published `SEQ:HASH` checkpoint), also that the ledger
        still holds that event."""
        with self._lock:
            with self.readings() as session:
                report = self._verify(session, expect, whole=True).report
            self._keep()
            return report

    def head(self) -> str:
        """`SEQ:HASH` the head row holds now (unverified, one row read): whether anything was appended since."""
        with self.sessions() as session:
            head = session.execute(select(EventHeadRow).where(EventHeadRow.id == 1)).scalar_one()
            return f"{head.seq}:{head.hash}"

    def events(self, limit: int | None = None, release: int | None = None) -> list[EventRow]:
        """Stored events, oldest first (the last `limit`; only those of `release`), unverified: for listing. Only
        the rows asked for are read."""
        with self.sessions() as session:
            query = select(EventRow).order_by(EventRow.seq.desc())
            if release is not None:
                query = query.where(EventRow.release_id == release)
            if limit:
                query = query.limit(limit)
            rows = list(session.execute(query).scalars())
        return rows[::-1]

    # --- writing -----------------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[Writer]:
        """One transaction holding the chain's head: verified state in, signed events appended, committed."""
        with self._lock:
            try:
                with self.sessions() as session, session.begin():
                    head = session.execute(
                        select(EventHeadRow).where(EventHeadRow.id == 1).with_for_update()
                    ).scalar_one()
                    verified = self._verify(session)
                    if not verified.report.ok:
                        raise LedgerBroken(f"the ledger does not verify: {verified.report.trouble}", hint=REPAIR_HINT)
                    self._prefix = None  # the writer folds its events into the state: kept again once committed
                    writer = Writer(self, session, head, verified.state)
                    with self._in(session):
                        yield writer
            except BaseException:
                self._prefix = None
                raise
            # committed: this checkout has now seen the chain up to what it wrote
            if verified.verifier is not None:
                verified.verifier.appended(writer.head.seq, writer.head.hash)
                self._prefix = _Prefix(verified.verifier, writer.head.seq, writer.head.hash)
                self._keep()
            self._remember(writer.head.seq, writer.head.hash, self._seen_head())

    def rebuild_release_rows(self) -> int:
        """Rewrite the releases table from the verified events (after an edit was found); returns the rows."""
        self._prefix = None
        with self._lock, self.sessions() as session, session.begin():
            session.execute(select(EventHeadRow).where(EventHeadRow.id == 1).with_for_update()).scalar_one()
            rows = list(session.execute(select(EventRow).order_by(EventRow.seq)).scalars())
            head = session.execute(select(EventHeadRow).where(EventHeadRow.id == 1)).scalar_one()
            verified = verify_events(rows, head.seq, head.hash, now=self.clock())
            for checkpoint in (self.checkpoint, self._seen_head()):  # a rebuild holds what every read holds
                problem = missing_checkpoint(rows, checkpoint) if checkpoint and verified.report.ok else None
                if problem:
                    raise LedgerBroken(f"the ledger does not hold what was seen of it before: {problem}")
            if not verified.report.ok:
                raise LedgerBroken(f"the ledger does not verify: {verified.report.trouble}", hint=REPAIR_HINT)
            for row in session.execute(select(ReleaseRow)).scalars():
                session.delete(row)
            session.flush()
            for release_id in verified.state.releases:
                _sync_row(session, verified.state, release_id)
            return len(verified.state.releases)


def _may_change(state: LedgerState, release: int | None) -> set[int]:
    """The releases whose status one event about `release` can change: itself, and what is live or rolling out
    in a stage (superseded, stopped, aborted); so an append does not look at every release."""
    found = {*state.live.values(), *state.rollouts.values()}
    if release is not None:
        found.add(release)
    return {i for i in found if i in state.releases}


def _sync_row(session: Session, state: LedgerState, release_id: int) -> None:
    release = state.releases[release_id]
    row = session.get(ReleaseRow, release_id)
    if row is None:
        row = ReleaseRow(id=release_id)
        session.add(row)
    row.stage, row.kind, row.status = release.stage, str(release.kind), str(release.status)
    row.build, row.requested_by, row.requested_at = (
        release.shipment.package_digest,
        release.requested_by,
        release.requested_at,
    )


@dataclass
class Writer:
    """Appends signed events to the chain in one transaction, each checked against the folded state first."""

    ledger: Ledger
    session: Session
    head: EventHeadRow
    state: LedgerState

    def append(self, kind: EventKind, release: int | None, data: dict[str, Any], identity: Identity) -> SignedEvent:
        """Check `kind` against the rules (RuleBroken when they refuse it), sign it as `identity`, append it."""
        now = self.ledger.now()
        last = self.state.last_at
        if last is not None and naive_utc(last) - now > MAX_CLOCK_SKEW:
            raise CheckFailed(
                f"the ledger's last event is dated {naive_utc(last):%Y-%m-%d %H:%M:%S}Z, "
                f"{naive_utc(last) - now} ahead of this machine's clock ({now:%Y-%m-%d %H:%M:%S}Z): nothing is "
                "signed on a chain whose times cannot both be right",
                hint="Check this machine's clock (timedatectl); if it is right, the event's signer's clock was "
                "ahead: `conveyor audit verify` names the event.",
            )
        at = max(now, naive_utc(last)) if last else now  # a clock a little behind the last event's waits for it
        event = Event(
            seq=self.head.seq + 1,
            prev=self.head.hash,
            at=at,
            kind=kind,
            release=release,
            by=identity.principal,
            key=identity.key.fingerprint,
            data=data,
        )
        if release is not None and release in self.state.releases:
            # the row this event will rewrite must be what the signed events made it (a reader that verified only
            # the events since its last read has not re-read the whole table)
            stored = self.session.get(ReleaseRow, release)
            edits = edited_rows(self.state, [stored] if stored else [], among={release})
            if edits:
                raise LedgerBroken(f"the ledger does not verify: {'; '.join(edits)}", hint=REPAIR_HINT)
        before = {i: self.state.releases[i].status for i in _may_change(self.state, release)}
        signers = self.state.signers_for(event)
        self.state.apply(event)
        signed = sign_event(event, identity)
        # What every reader will check, checked before it is written: an event its verifier would refuse (a key
        # that names someone else in the policy, a key outside its validity window) is never committed.
        verify_signature(signed, AllowedSigners.parse(signers.allowed_signers_text, "the ledger's policy"))
        row = EventRow(
            seq=event.seq,
            at=event.at,
            kind=str(kind),
            release_id=release,
            principal=event.by,
            key=event.key,
            payload=signed.payload.decode(),
            signature=signed.signature,
            prev_hash=event.prev,
            hash=signed.hash,
        )
        if self.session.get_bind().dialect.name == "postgresql":  # the team's server clock, beside the signer's
            row.recorded_at = func.timezone("UTC", func.clock_timestamp())
        self.session.add(row)
        self.head.seq, self.head.hash = event.seq, signed.hash
        changed = {
            i for i in _may_change(self.state, release) | set(before) if before.get(i) != self.state.releases[i].status
        }
        for release_id in sorted(changed | ({release} if release is not None else set())):
            _sync_row(self.session, self.state, release_id)
        self.session.flush()
        return signed
