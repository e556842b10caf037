"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, v1) carrying in-toto Statements, signed with SSH
keys: each `sig` is the base64 of an sshsig blob (PROTOCOL.sshsig, namespace `conveyor`) over DSSE's
PAE(payloadType, payload); `keyid` is the key's SHA256 fingerprint (a hint, as DSSE says, never trusted).

On disk an envelope is its canonical JSON (sorted keys, no blanks), so its digest is the same wherever it is
stored or pushed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.trust.errors import MalformedSignature, SignatureRefused
from conveyor.trust.intoto import Statement
from conveyor.trust.sshsig import NAMESPACE, sign_blob, verify

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from conveyor.trust.allowed_signers import AllowedSigners
    from conveyor.trust.keys import SigningKey

IN_TOTO = "application/vnd.in-toto+json"
MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64decode(text: Any, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE accepts both)."""
    if not isinstance(text, str):
        raise MalformedSignature(f"the envelope's {what} is not a base64 string")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignature(f"the envelope's {what} is not valid base64") from None


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        """`sha256:HEX` of the canonical JSON: how the ledger and OCI referrers name this envelope."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    def statement(self) -> Statement:
        """The payload as a Statement, UNVERIFIED: use `verify_envelope` for anything that decides."""
        return Statement.from_bytes(self.payload)

    def save(self, path: Path) -> str:
        """Write the canonical JSON to `path` (atomically); returns the digest."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(self.to_bytes())
        temporary.replace(path)
        return self.digest

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        if not isinstance(data, dict) or not isinstance(data.get("payloadType"), str):
            raise MalformedSignature("not a DSSE envelope (no payloadType)")
        raw_signatures = data.get("signatures")
        if not isinstance(raw_signatures, list):
            raise MalformedSignature("a DSSE envelope needs a list of signatures")
        signatures = []
        for item in raw_signatures:
            if not isinstance(item, dict):
                raise MalformedSignature("a DSSE signature must be an object {keyid, sig}")
            signatures.append(EnvelopeSignature(str(item.get("keyid", "")), _b64decode(item.get("sig"), "sig")))
        return cls(data["payloadType"], _b64decode(data.get("payload"), "payload"), tuple(signatures))

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        try:
            return cls.from_json(json.loads(data))
        except ValueError:
            raise MalformedSignature("the envelope is not JSON") from None

    @classmethod
    def load(cls, path: Path) -> Envelope:
        try:
            return cls.from_bytes(path.read_bytes())
        except FileNotFoundError:
            raise MalformedSignature(f"there is no envelope at {path}") from None
        except MalformedSignature as error:
            raise MalformedSignature(f"{path}: {error.message}", hint=error.hint) from None


def sign_statement(statement: Statement, key: SigningKey, namespace: str = NAMESPACE) -> Envelope:
    """The Statement in a DSSE envelope signed by `key`."""
    payload = statement.to_bytes()
    blob = sign_blob(pae(IN_TOTO, payload), key, namespace)
    return Envelope(IN_TOTO, payload, (EnvelopeSignature(key.fingerprint, blob),))


def verify_envelope(
    envelope: Envelope, allowed: AllowedSigners, namespace: str = NAMESPACE, at: datetime | None = None
) -> tuple[str, Statement]:
    """(principal, Statement) when a signature of the envelope verifies with a key of allowed_signers.

    Signatures by keys not in allowed_signers are passed over, as DSSE's threshold of one says; when none
    verifies, the first refusal is raised (a SignatureRefused subclass naming why).
    """
    if envelope.payload_type != IN_TOTO:
        raise MalformedSignature(f"the envelope carries {envelope.payload_type!r}, not an in-toto Statement")
    if not envelope.signatures:
        raise MalformedSignature("the envelope is not signed")
    message = pae(envelope.payload_type, envelope.payload)
    first: SignatureRefused | None = None
    for signature in envelope.signatures:
        try:
            principal = verify(message, signature.sig, allowed, namespace, at)
        except SignatureRefused as error:
            first = first or error
            continue
        return principal, Statement.from_bytes(envelope.payload)
    assert first is not None  # noqa: S101 -- narrows for mypy: the envelope has signatures, so one refusal was kept
    raise first
