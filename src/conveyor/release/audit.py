"""The audit log's hash chain: each entry's hash covers its content and the previous entry's hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


def canonical(details: dict[str, Any]) -> str:
    """The one JSON text of `details` that is hashed and stored (sorted keys, no spaces)."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(seq: int, at: datetime, actor: str, action: str, subject: str, details: str, prev_hash: str) -> str:
    """sha256 over the entry's fields and the previous hash, as one canonical JSON array."""
    content = json.dumps(
        [seq, at.replace(tzinfo=None).isoformat(timespec="microseconds"), actor, action, subject, details, prev_hash],
        separators=(",", ":"),
    )
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """What `audit verify` found: ok, how many entries, the head hash, and the first bad entry if any."""

    ok: bool
    entries: int
    head: str
    first_bad: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_chain(rows: list[Any], head_seq: int, head_hash: str) -> ChainReport:
    """Walk `rows` (ordered by seq) and report the first entry that was edited, deleted or inserted."""
    previous = GENESIS
    expected_seq = 1
    for row in rows:
        if row.seq != expected_seq:
            missing = (
                f"entry {expected_seq}" if row.seq == expected_seq + 1 else f"entries {expected_seq}-{row.seq - 1}"
            )
            return ChainReport(
                False, len(rows), head_hash, expected_seq, f"{missing} deleted (entry {row.seq} follows)"
            )
        if row.prev_hash != previous:
            return ChainReport(
                False, len(rows), head_hash, row.seq, f"entry {row.seq} does not follow the entry before it"
            )
        computed = entry_hash(row.seq, row.at, row.actor, row.action, row.subject, row.details, row.prev_hash)
        if computed != row.hash:
            return ChainReport(
                False, len(rows), head_hash, row.seq, f"entry {row.seq} was edited (its content no longer matches)"
            )
        previous = row.hash
        expected_seq += 1
    last = expected_seq - 1
    if head_seq != last or head_hash != previous:
        if head_seq > last:
            span = f"entry {last + 1}" if head_seq == last + 1 else f"entries {last + 1}-{head_seq}"
            return ChainReport(False, len(rows), head_hash, last + 1, f"{span} deleted from the end of the log")
        return ChainReport(False, len(rows), head_hash, last, f"the log's head does not match entry {last}")
    return ChainReport(True, len(rows), head_hash)
