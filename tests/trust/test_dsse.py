"""DSSE envelopes of in-toto Statements signed with SSH keys: PAE as the spec gives it, OpenSSH can check the
signature, and any change to payload, type or signer is refused."""

from __future__ import annotations

import base64
import json

import pytest
from openssh_tools import ssh_keygen_verify

from conveyor.trust import (
    IN_TOTO,
    SLSA_PROVENANCE,
    AllowedSigners,
    BadSignature,
    Envelope,
    MalformedSignature,
    SshSignature,
    Statement,
    Subject,
    UnknownSigner,
    load_signing_key,
    pae,
    sign_statement,
    verify_envelope,
)
from conveyor.trust.dsse import EnvelopeSignature

STATEMENT = Statement(
    (Subject.sha256("package", "sha256:" + "ab" * 32), Subject.sha256("image", "cd" * 32)),
    SLSA_PROVENANCE,
    {"buildDefinition": {"buildType": "https://example.com/build/v1"}, "runDetails": {}},
)


def test_pae_matches_the_dsse_specification():
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_statement_is_in_toto_v1():
    data = json.loads(STATEMENT.to_bytes())
    assert data["_type"] == "https://in-toto.io/Statement/v1"
    assert data["subject"][0] == {"name": "package", "digest": {"sha256": "ab" * 32}}
    assert data["predicateType"] == "https://slsa.dev/provenance/v1"
    assert Statement.from_bytes(STATEMENT.to_bytes()) == STATEMENT
    assert STATEMENT.digests() == {"package": "sha256:" + "ab" * 32, "image": "sha256:" + "cd" * 32}


def test_envelope_round_trip_and_openssh_checks_the_signature(keys, tmp_path):
    key = load_signing_key(keys.key("ci"))
    envelope = sign_statement(STATEMENT, key)
    data = json.loads(envelope.to_bytes())
    assert data["payloadType"] == IN_TOTO == "application/vnd.in-toto+json"
    assert base64.b64decode(data["payload"]) == STATEMENT.to_bytes()
    assert data["signatures"][0]["keyid"] == key.fingerprint and key.fingerprint.startswith("SHA256:")
    digest = envelope.save(tmp_path / "provenance.dsse.json")
    loaded = Envelope.load(tmp_path / "provenance.dsse.json")
    assert loaded == envelope and loaded.digest == digest
    allowed = AllowedSigners.load(keys.allowed_signers)
    assert verify_envelope(loaded, allowed) == ("ci", STATEMENT)
    # the sig is an sshsig blob over PAE: ssh-keygen -Y verify accepts it as it is
    armored = SshSignature.parse(envelope.signatures[0].sig).armor()
    checked = ssh_keygen_verify(keys.allowed_signers, "ci", armored, pae(IN_TOTO, envelope.payload))
    assert checked.returncode == 0, checked.stderr


def test_changed_payload_or_type_is_refused(keys):
    allowed = AllowedSigners.load(keys.allowed_signers)
    envelope = sign_statement(STATEMENT, load_signing_key(keys.key("ci")))
    other = Statement((Subject.sha256("image", "ee" * 32),), STATEMENT.predicate_type, STATEMENT.predicate)
    with pytest.raises(BadSignature):
        verify_envelope(Envelope(envelope.payload_type, other.to_bytes(), envelope.signatures), allowed)
    with pytest.raises(MalformedSignature, match="not an in-toto Statement"):
        verify_envelope(Envelope("application/json", envelope.payload, envelope.signatures), allowed)
    with pytest.raises(MalformedSignature, match="not signed"):
        verify_envelope(Envelope(envelope.payload_type, envelope.payload, ()), allowed)


def test_signer_outside_allowed_signers_is_refused_and_a_forged_keyid_changes_nothing(keys):
    allowed = AllowedSigners.load(keys.allowed_signers)
    ci = load_signing_key(keys.key("ci"))
    outsider = sign_statement(STATEMENT, load_signing_key(keys.key("outsider")))
    with pytest.raises(UnknownSigner):
        verify_envelope(outsider, allowed)
    relabelled = Envelope(IN_TOTO, outsider.payload, (EnvelopeSignature(ci.fingerprint, outsider.signatures[0].sig),))
    with pytest.raises(UnknownSigner):
        verify_envelope(relabelled, allowed)
    # an extra signature by an unknown key does not spoil a valid one (DSSE: one valid signature suffices)
    both = Envelope(IN_TOTO, outsider.payload, (*outsider.signatures, *sign_statement(STATEMENT, ci).signatures))
    assert verify_envelope(both, allowed)[0] == "ci"


def test_malformed_envelopes_are_named(tmp_path):
    for text, expected in (
        ("not json", "not JSON"),
        ('{"payload": "e30="}', "no payloadType"),
        ('{"payloadType": "x", "payload": "%%%", "signatures": []}', "not valid base64"),
    ):
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(MalformedSignature, match=expected):
            Envelope.load(path)
