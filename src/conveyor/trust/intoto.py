"""in-toto Statements (https://github.com/in-toto/attestation, spec v1): what an attestation says about which
artifacts. `subject` names the artifacts by digest; `predicateType` says how to read `predicate`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conveyor.trust.errors import MalformedSignature

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


@dataclass(frozen=True)
class Subject:
    """An artifact: a name and its digests (`{"sha256": HEX}`, lowercase hex without a prefix)."""

    name: str
    digest: dict[str, str]

    @classmethod
    def sha256(cls, name: str, digest: str) -> Subject:
        """A subject from a `sha256:HEX` (or bare HEX) digest."""
        return cls(name, {"sha256": digest.removeprefix("sha256:").lower()})

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1."""

    subject: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_json() for s in self.subject],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the DSSE payload."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def digests(self, algorithm: str = "sha256") -> dict[str, str]:
        """Subject name → `sha256:HEX`."""
        return {s.name: f"{algorithm}:{s.digest[algorithm]}" for s in self.subject if algorithm in s.digest}

    @classmethod
    def from_json(cls, data: object) -> Statement:
        if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
            raise MalformedSignature(f"the payload is not an in-toto Statement ({STATEMENT_TYPE})")
        subjects = data.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise MalformedSignature("an in-toto Statement needs at least one subject")
        parsed = []
        for item in subjects:
            digest = item.get("digest") if isinstance(item, dict) else None
            if (
                not isinstance(digest, dict)
                or not digest
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items())
            ):
                raise MalformedSignature("every subject of an in-toto Statement needs a digest {algorithm: hex}")
            parsed.append(Subject(str(item.get("name", "")), dict(digest)))
        predicate_type, predicate = data.get("predicateType"), data.get("predicate", {})
        if not isinstance(predicate_type, str) or not isinstance(predicate, dict):
            raise MalformedSignature("an in-toto Statement needs a predicateType and an object predicate")
        return cls(tuple(parsed), predicate_type, predicate)

    @classmethod
    def from_bytes(cls, payload: bytes) -> Statement:
        try:
            return cls.from_json(json.loads(payload))
        except ValueError:
            raise MalformedSignature("the payload is not JSON") from None
