"""Verifying the ledger: every event's place in the chain, its hash, its signature, and the rules it must keep.

Events are read in order. Each must follow the one before (seq and previous hash), hash to its stored hash, carry
a signature by a key that the policy in force lists for the principal it names, and be allowed by the rules at
that point (`LedgerState.apply`). The first event that fails is named, and nothing after it is trusted. The
`releases` table, derived from the events, is compared with them too: a row that disagrees was edited.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.release.events import GENESIS, Event, EventRefused, SignedEvent, verify_signature
from conveyor.release.state import LedgerState
from conveyor.trust import AllowedSigners

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from conveyor.release.policy import PolicySet
    from conveyor.release.tables import EventRow, ReleaseRow


@dataclass(frozen=True)
class ChainReport:
    """What `audit verify` found: ok, how many events, the head, the first bad event and why, edited rows."""

    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    problem: str | None = None
    edited_rows: list[str] = field(default_factory=list)
    policy: str | None = None
    project_policy: str | None = None

    @property
    def policy_matches_project(self) -> bool:
        """Whether the policy in force is the project file's (False: a proposal is due, or the ledger was
        started under a policy that is not this project's)."""
        return self.policy is None or self.policy == self.project_policy

    @property
    def checkpoint(self) -> str:
        """`SEQ:HASH` of the newest event: publish it outside the ledger (a CI log, a release note) and pass it to
        `audit verify --expect` later, and events cut off the end, or a ledger replaced by another, are found."""
        return f"{self.entries}:{self.head}"

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "policy_matches_project": self.policy_matches_project,
            "checkpoint": self.checkpoint,
        }

    @property
    def trouble(self) -> str:
        """One line naming what is wrong (empty when nothing is)."""
        if self.problem:
            return f"event {self.first_bad}: {self.problem}" if self.first_bad else self.problem
        return "; ".join(self.edited_rows)


CHECKPOINT = re.compile(r"(?P<seq>[1-9][0-9]*):(?P<hash>[0-9a-f]{16,64})")


def parse_checkpoint(text: str) -> tuple[int, str]:
    """`SEQ:HASH` (the hash, or at least its first 16 hex digits) → (seq, hash prefix)."""
    match = CHECKPOINT.fullmatch(text.strip().lower())
    if match is None:
        raise ConveyorError(
            f"checkpoint {text!r} is not SEQ:HASH",
            hint="Pass what `conveyor audit verify` printed after `checkpoint`, e.g. 16:fb7da78ea6c5acaa... "
            "(the whole hash, or at least its first 16 hex digits).",
        )
    return int(match["seq"]), match["hash"]


def missing_checkpoint(rows: Sequence[EventRow], checkpoint: str) -> str | None:
    """Why the stored events do not hold the event a published checkpoint names (None when they do)."""
    seq, digest = parse_checkpoint(checkpoint)
    row = next((r for r in rows if r.seq == seq), None)
    if row is None:
        last = rows[-1].seq if rows else 0
        return (
            f"the checkpoint names event {seq}, but the ledger ends at event {last}: events were cut off its end, "
            "or it was replaced by another ledger"
        )
    if not row.hash.startswith(digest):
        return (
            f"event {seq} is not the one the checkpoint names (hash {row.hash[:16]}..., not {digest[:16]}...): "
            "the ledger was rewritten from there, or replaced by another"
        )
    return None


@dataclass
class Verified:
    """The state folded from the events that verified, the report, and the verifier that folded them (which can
    go on from there with the events appended since)."""

    state: LedgerState
    report: ChainReport
    verifier: Verifier | None = None


def _columns_match(row: EventRow, event: Event) -> str | None:
    """The first stored column that disagrees with the signed payload, if any."""
    pairs = {
        "seq": (row.seq, event.seq),
        "prev_hash": (row.prev_hash, event.prev),
        "kind": (row.kind, str(event.kind)),
        "release_id": (row.release_id, event.release),
        "principal": (row.principal, event.by),
        "key": (row.key, event.key),
        "at": (row.at.replace(tzinfo=None), event.at.replace(tzinfo=None)),
    }
    return next((name for name, (stored, signed) in pairs.items() if stored != signed), None)


MAX_CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of the reader's clock an event may be dated


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class Verifier:
    """Folds events one by one, checking each; keeps the allowed signers of each policy it has seen.

    An event dated more than `MAX_CLOCK_SKEW` ahead of `now` (the reader's clock) is refused: a signer whose clock
    runs ahead would otherwise date every later event after its own and stretch every approval window.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self.now = _utc(now) if now is not None else datetime.now(UTC)
        self.state = LedgerState()
        self._allowed: dict[str, AllowedSigners] = {}
        self.previous = GENESIS
        self.count = 0

    def allowed(self, policy: PolicySet) -> AllowedSigners:
        digest = policy.digest
        if digest not in self._allowed:
            self._allowed[digest] = AllowedSigners.parse(policy.allowed_signers_text, "the ledger's policy")
        return self._allowed[digest]

    def check(self, row: EventRow) -> None:
        """Verify and fold one stored event; raises (EventRefused, RuleBroken, ...) naming what is wrong."""
        expected = self.count + 1
        if row.seq != expected:
            missing = f"event {expected}" if row.seq == expected + 1 else f"events {expected}-{row.seq - 1}"
            raise EventRefused(f"{missing} deleted (event {row.seq} follows)")
        if row.prev_hash != self.previous:
            raise EventRefused(f"event {row.seq} does not follow the event before it (the chain was cut or re-hashed)")
        payload = row.payload.encode()
        if hashlib.sha256(payload).hexdigest() != row.hash:
            raise EventRefused(f"event {row.seq} was edited (its content no longer matches its hash)")
        event = Event.from_payload(payload)
        ahead = _utc(event.at) - self.now
        if ahead > MAX_CLOCK_SKEW:
            raise EventRefused(
                f"event {row.seq} ({event.kind} by {event.by}) is dated {_utc(event.at):%Y-%m-%d %H:%M:%S}Z, "
                f"{ahead.days} days {ahead.seconds // 3600} h ahead of this machine's clock: its signer's clock was "
                "wrong, or this one is"
            )
        column = _columns_match(row, event)
        if column is not None:
            raise EventRefused(f"event {row.seq} was edited (its {column} column differs from what was signed)")
        verify_signature(SignedEvent(event, payload, row.signature), self.allowed(self.state.signers_for(event)))
        self.state.apply(event)
        self.previous = row.hash
        self.count += 1

    def reading_at(self, now: datetime) -> None:
        """Check the events to come against the reader's clock at `now` (a verifier that goes on later)."""
        self.now = _utc(now)

    def appended(self, seq: int, digest: str) -> None:
        """An event its writer folded into `state` itself (checked by the same rules) and committed."""
        self.previous, self.count = digest, seq


def verify_events(rows: Sequence[EventRow], head_seq: int, head_hash: str, now: datetime | None = None) -> Verified:
    """Walk the events in order; the report names the first one that fails, and the state is what came before."""
    return verify_more(Verifier(now), rows, head_seq, head_hash)


def verify_more(verifier: Verifier, rows: Sequence[EventRow], head_seq: int, head_hash: str) -> Verified:
    """Go on folding with `verifier` (fresh, or one that verified the events before `rows`) up to the head."""
    for row in rows:
        try:
            verifier.check(row)
        except ConveyorError as exc:
            bad = min(row.seq, verifier.count + 1)  # a gap names the first missing event
            return Verified(verifier.state, ChainReport(False, len(rows), head_hash, bad, exc.message))
    last = verifier.count
    if head_seq != last or head_hash != verifier.previous:
        if head_seq > last:
            span = f"event {last + 1}" if head_seq == last + 1 else f"events {last + 1}-{head_seq}"
            report = ChainReport(False, len(rows), head_hash, last + 1, f"{span} deleted from the end of the ledger")
        else:
            report = ChainReport(False, len(rows), head_hash, last, f"the ledger's head does not match event {last}")
        return Verified(verifier.state, report)
    policy = verifier.state.policy.digest if verifier.state.policy else None
    return Verified(verifier.state, ChainReport(True, last, head_hash, policy=policy), verifier)


def edited_rows(state: LedgerState, rows: Sequence[ReleaseRow], among: Collection[int] | None = None) -> list[str]:
    """Rows of the `releases` table that disagree with the signed events (each one an edit made outside conveyor);
    `among`: only these releases were read (the others' rows are not reported missing)."""
    found = []
    seen = set()
    for row in rows:
        seen.add(row.id)
        release = state.releases.get(row.id)
        if release is None:
            found.append(f"releases row {row.id} has no signed request (inserted)")
            continue
        signed = {
            "stage": release.stage,
            "kind": str(release.kind),
            "status": str(release.status),
            "build": release.shipment.package_digest,
            "requested_by": release.requested_by,
        }
        stored = {
            "stage": row.stage,
            "kind": row.kind,
            "status": row.status,
            "build": row.build,
            "requested_by": row.requested_by,
        }
        for column, value in signed.items():
            if stored[column] != value:
                found.append(f"releases row {row.id}: {column} says {stored[column]!r}, its signed events {value!r}")
    for missing in sorted((set(state.releases) if among is None else {i for i in among if i in state.releases}) - seen):
        found.append(f"releases row {missing} was deleted")
    return found
