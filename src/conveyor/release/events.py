"""Ledger events: each a canonical JSON statement signed (sshsig, namespace `conveyor`) by whoever acted.

An event names its place in the chain (`seq` and the previous event's hash, `prev`), its time, its kind, the
release it is about, the principal and key fingerprint of its signer, and its data. Its hash is sha256 over the
canonical JSON; its signature covers the same bytes, so no event can be edited, moved, or re-hashed into another
chain without the signer's private key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.errors import CheckFailed
from conveyor.release.policy import canonical
from conveyor.release.status import EventKind
from conveyor.trust import AllowedSigners, Identity, SignatureRefused, sign, verify

VERSION = 1
GENESIS = "0" * 64


class EventRefused(CheckFailed):
    """An event does not verify: it was edited, inserted, reordered or signed by a key that may not sign it."""


def iso(moment: datetime) -> str:
    """How times are written in events: naive UTC, to the microsecond."""
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Event:
    """What was done, by whom, where in the chain: the part that is hashed and signed."""

    seq: int
    prev: str
    at: datetime
    kind: EventKind
    release: int | None
    by: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "seq": self.seq,
            "prev": self.prev,
            "at": iso(self.at),
            "kind": str(self.kind),
            "release": self.release,
            "by": self.by,
            "key": self.key,
            "data": self.data,
        }

    def payload(self) -> bytes:
        return canonical(self.to_json())

    @classmethod
    def from_payload(cls, payload: bytes) -> Event:
        try:
            data = json.loads(payload)
            if data.get("v") != VERSION:
                raise ValueError(f"version {data.get('v')!r}")
            return cls(
                seq=int(data["seq"]),
                prev=str(data["prev"]),
                at=datetime.fromisoformat(data["at"]),
                kind=EventKind(data["kind"]),
                release=None if data["release"] is None else int(data["release"]),
                by=str(data["by"]),
                key=str(data["key"]),
                data=dict(data["data"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EventRefused(f"an event's content cannot be read ({exc})") from None


@dataclass(frozen=True)
class SignedEvent:
    """An event with its signature and hash, as stored."""

    event: Event
    payload: bytes
    signature: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def seq(self) -> int:
        return self.event.seq


def sign_event(event: Event, identity: Identity) -> SignedEvent:
    """Sign `event` with the acting key (whose principal and fingerprint the event must already name)."""
    if event.by != identity.principal or event.key != identity.key.fingerprint:
        raise ValueError("an event is signed by the identity it names")
    payload = event.payload()
    return SignedEvent(event, payload, sign(payload, identity.key))


def verify_signature(signed: SignedEvent, allowed: AllowedSigners) -> None:
    """The signature holds for the payload, by a key `allowed` lists for the principal the event names."""
    event = signed.event
    try:
        at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)  # the key must be valid when it signed
        principal = verify(signed.payload, signed.signature, allowed, at=at)
    except SignatureRefused as refused:
        raise EventRefused(f"event {event.seq} ({event.kind} by {event.by}): {refused.message}") from None
    if principal != event.by:
        raise EventRefused(
            f"event {event.seq} ({event.kind}) says it is by {event.by}, but it was signed by {principal}'s key"
        )
