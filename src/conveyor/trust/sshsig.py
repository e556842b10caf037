"""OpenSSH signatures (PROTOCOL.sshsig), byte for byte as `ssh-keygen -Y sign` writes and `-Y verify` reads them.

A signature blob is `"SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved) string(hash)
string(signature)`, where `signature` signs `"SSHSIG" string(namespace) string(reserved) string(hash)
string(H(message))`. The armored form wraps its base64 at 70 columns between `-----BEGIN SSH SIGNATURE-----` and
`-----END SSH SIGNATURE-----`. The namespace keeps a signature made for one purpose from being used for another:
conveyor signs in the namespace `conveyor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.trust.errors import MalformedSignature, WrongNamespace
from conveyor.trust.publickey import PublicKey
from conveyor.trust.wire import Reader, string, uint32

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from conveyor.trust.allowed_signers import AllowedSigners
    from conveyor.trust.keys import SigningKey

NAMESPACE = "conveyor"
MAGIC = b"SSHSIG"
VERSION = 1
HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
DEFAULT_HASH = "sha512"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
WRAP = 70


def signed_data(message: bytes, namespace: str, hash_algorithm: str = DEFAULT_HASH) -> bytes:
    """What the key actually signs for `message` (PROTOCOL.sshsig, "Signed Data"; the reserved field is empty,
    and, as in OpenSSH, a signature's own reserved field is not part of what is checked)."""
    digest = HASHES[hash_algorithm](message).digest()
    return MAGIC + string(namespace) + string(b"") + string(hash_algorithm) + string(digest)


@dataclass(frozen=True)
class SshSignature:
    """A parsed sshsig blob."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature: bytes
    reserved: bytes = b""

    def to_blob(self) -> bytes:
        return (
            MAGIC
            + uint32(VERSION)
            + string(self.public_key.blob)
            + string(self.namespace)
            + string(self.reserved)
            + string(self.hash_algorithm)
            + string(self.signature)
        )

    def armor(self) -> str:
        text = base64.b64encode(self.to_blob()).decode()
        lines = [text[i : i + WRAP] for i in range(0, len(text), WRAP)]
        return "\n".join([BEGIN, *lines, END]) + "\n"

    @classmethod
    def from_blob(cls, blob: bytes) -> SshSignature:
        reader = Reader(blob, "SSH signature")
        if reader.raw(len(MAGIC)) != MAGIC:
            raise MalformedSignature("not an SSH signature (it does not start with SSHSIG)")
        version = reader.uint32()
        if version != VERSION:
            raise MalformedSignature(f"SSH signature version {version} is not supported (only {VERSION})")
        key = PublicKey(reader.string())
        namespace, reserved, hash_algorithm, signature = reader.text(), reader.string(), reader.text(), reader.string()
        reader.end()
        if hash_algorithm not in HASHES:
            raise MalformedSignature(f"SSH signature hash {hash_algorithm!r} is not sha256 or sha512")
        return cls(key, namespace, hash_algorithm, signature, reserved)

    @classmethod
    def parse(cls, signature: str | bytes) -> SshSignature:
        """From the armored text, or from the raw blob."""
        if isinstance(signature, bytes):
            if signature.startswith(MAGIC):
                return cls.from_blob(signature)
            signature = signature.decode(errors="replace")
        text = signature.strip()
        if not (text.startswith(BEGIN) and text.endswith(END)):
            raise MalformedSignature(f"an SSH signature starts with {BEGIN} and ends with {END}")
        body = "".join(text[len(BEGIN) : -len(END)].split())
        try:
            return cls.from_blob(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            raise MalformedSignature("the base64 of the SSH signature is not valid") from None


def sign_blob(message: bytes, key: SigningKey, namespace: str = NAMESPACE) -> bytes:
    """The raw sshsig blob of `message` signed by `key` (in this process when the private key is at hand,
    else by `ssh-keygen -Y sign`, which uses ssh-agent or asks for the passphrase)."""
    if key.private is not None:
        signature = key.sign_raw(signed_data(message, namespace))
        return SshSignature(key.public, namespace, DEFAULT_HASH, signature).to_blob()
    return SshSignature.parse(key.sign_with_ssh_keygen(message, namespace)).to_blob()


def sign(message: bytes, key: SigningKey, namespace: str = NAMESPACE) -> str:
    """An armored SSH signature of `message` (`-----BEGIN SSH SIGNATURE-----` …)."""
    return SshSignature.from_blob(sign_blob(message, key, namespace)).armor()


def verify(
    message: bytes,
    signature: str | bytes,
    allowed: AllowedSigners,
    namespace: str = NAMESPACE,
    at: datetime | None = None,
) -> str:
    """The principal whose allowed key signed `message` in `namespace` (valid at `at`, default now).

    Raises a `SignatureRefused` subclass naming why: MalformedSignature, WrongNamespace, UnknownSigner (the key is
    not in allowed_signers, or not for this namespace or time), BadSignature (message or signature changed),
    UnsupportedKey.
    """
    parsed = SshSignature.parse(signature)
    if parsed.namespace != namespace:
        raise WrongNamespace(
            f"the signature was made for namespace {parsed.namespace!r}, not {namespace!r}",
            hint="A signature made for one purpose cannot stand for another; sign again in the right namespace.",
        )
    principal = allowed.signer(parsed.public_key, namespace, at)
    parsed.public_key.verify(parsed.signature, signed_data(message, namespace, parsed.hash_algorithm))
    return principal
