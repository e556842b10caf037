"""sshsig: conveyor's signatures and OpenSSH's are interchangeable, and every refusal names why."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from openssh_tools import KEY_TYPES, ssh_keygen_find_principals, ssh_keygen_sign, ssh_keygen_verify

from conveyor.trust import (
    AllowedSigners,
    BadSignature,
    MalformedSignature,
    SshSignature,
    UnknownSigner,
    UnsupportedKey,
    WrongNamespace,
    load_signing_key,
    sign,
    verify,
)
from conveyor.trust.sshsig import signed_data
from conveyor.trust.wire import string

MESSAGE = b"release 7 of census to prod\n"


def test_ed25519_signature_is_byte_identical_to_ssh_keygens(keys):
    ours = sign(MESSAGE, load_signing_key(keys.key("alice")))
    assert ours == ssh_keygen_sign(keys.key("alice"), MESSAGE)
    assert ours.startswith("-----BEGIN SSH SIGNATURE-----\n") and ours.endswith("-----END SSH SIGNATURE-----\n")
    assert max(len(line) for line in ours.splitlines()) == 70


@pytest.mark.parametrize("name", list(KEY_TYPES))
def test_openssh_verifies_ours_and_we_verify_openssh(typed_keys: Path, name: str):
    allowed_file = typed_keys / "allowed_signers"
    allowed = AllowedSigners.load(allowed_file)
    ours = sign(MESSAGE, load_signing_key(typed_keys / name))
    accepted = ssh_keygen_verify(allowed_file, name, ours, MESSAGE)
    assert accepted.returncode == 0, accepted.stderr
    assert ssh_keygen_find_principals(allowed_file, ours) == name
    theirs = ssh_keygen_sign(typed_keys / name, MESSAGE)
    assert verify(MESSAGE, theirs, allowed) == name
    assert SshSignature.parse(theirs).public_key == load_signing_key(typed_keys / name).public
    # and a changed message is refused by both
    assert ssh_keygen_verify(allowed_file, name, ours, MESSAGE + b"!").returncode != 0
    with pytest.raises(BadSignature):
        verify(MESSAGE + b"!", theirs, allowed)
    with pytest.raises(BadSignature):
        verify(MESSAGE + b"!", ours, allowed)


def test_sha256_hash_signatures_from_openssh_verify(keys):
    theirs = ssh_keygen_sign(keys.key("bob"), MESSAGE, "conveyor", "-O", "hashalg=sha256")
    assert SshSignature.parse(theirs).hash_algorithm == "sha256"
    assert verify(MESSAGE, theirs, AllowedSigners.load(keys.allowed_signers)) == "bob"


def test_unknown_key_is_refused_by_both(keys):
    signature = sign(MESSAGE, load_signing_key(keys.key("outsider")))
    with pytest.raises(UnknownSigner, match="not in"):
        verify(MESSAGE, signature, AllowedSigners.load(keys.allowed_signers))
    assert ssh_keygen_verify(keys.allowed_signers, "alice", signature, MESSAGE).returncode != 0


def test_wrong_namespace_is_refused_by_both(keys):
    allowed = AllowedSigners.load(keys.allowed_signers)
    for_git = ssh_keygen_sign(keys.key("alice"), MESSAGE, "git")
    with pytest.raises(WrongNamespace, match="'git', not 'conveyor'"):
        verify(MESSAGE, for_git, allowed)
    assert ssh_keygen_verify(keys.allowed_signers, "alice", for_git, MESSAGE).returncode != 0
    assert verify(MESSAGE, for_git, allowed, namespace="git") == "alice"


def test_changed_signature_bytes_are_refused(keys):
    allowed = AllowedSigners.load(keys.allowed_signers)
    blob = bytearray(SshSignature.parse(sign(MESSAGE, load_signing_key(keys.key("carol")))).to_blob())
    blob[-5] ^= 0x01
    with pytest.raises(BadSignature):
        verify(MESSAGE, bytes(blob), allowed)
    with pytest.raises(MalformedSignature):
        verify(MESSAGE, bytes(blob[:-3]), allowed)
    with pytest.raises(MalformedSignature):
        verify(MESSAGE, "-----BEGIN SSH SIGNATURE-----\nnot base64!\n-----END SSH SIGNATURE-----\n", allowed)


def test_swapped_public_key_in_the_signature_is_refused(keys):
    """The blob names alice's key but carries bob's signature: the key lookup says alice, the check says no."""
    allowed = AllowedSigners.load(keys.allowed_signers)
    bobs = SshSignature.parse(sign(MESSAGE, load_signing_key(keys.key("bob"))))
    forged = SshSignature(load_signing_key(keys.key("alice")).public, "conveyor", "sha512", bobs.signature)
    with pytest.raises(BadSignature):
        verify(MESSAGE, forged.armor(), allowed)
    assert ssh_keygen_verify(keys.allowed_signers, "alice", forged.armor(), MESSAGE).returncode != 0


def test_rsa_with_sha1_is_refused(typed_keys: Path):
    key = load_signing_key(typed_keys / "rsa")
    assert key.private is not None
    data = signed_data(MESSAGE, "conveyor")
    sha1 = string("ssh-rsa") + string(key.private.sign(data, padding.PKCS1v15(), hashes.SHA1()))  # type: ignore[union-attr, call-arg]
    signature = SshSignature(key.public, "conveyor", "sha512", sha1).armor()
    with pytest.raises(UnsupportedKey, match="SHA-1"):
        verify(MESSAGE, signature, AllowedSigners.load(typed_keys / "allowed_signers"))


def test_signature_round_trips_through_its_blob(keys):
    armored = sign(MESSAGE, load_signing_key(keys.key("ci")))
    parsed = SshSignature.parse(armored)
    assert SshSignature.parse(parsed.to_blob()) == parsed
    assert parsed.armor() == armored
    assert base64.b64decode("".join(armored.splitlines()[1:-1])).startswith(b"SSHSIG\x00\x00\x00\x01")
