"""OpenSSH public keys: the wire blob, the `TYPE BASE64 [comment]` text, the SHA256 fingerprint, and checking a raw
SSH signature (the `string algorithm, string blob` pair) over some data with `cryptography`.

Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, and ssh-rsa keys (≥ 1024 bits) with rsa-sha2-256/512
signatures. Refused as OpenSSH's sshsig refuses them: RSA signatures with SHA-1 (`ssh-rsa`), DSA; security-key
(sk-*) and certificate keys are not supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conveyor.trust.errors import BadSignature, MalformedSignature, UnsupportedKey
from conveyor.trust.wire import Reader

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
ECDSA_CURVES: dict[str, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    "ecdsa-sha2-nistp256": (ec.SECP256R1(), hashes.SHA256()),
    "ecdsa-sha2-nistp384": (ec.SECP384R1(), hashes.SHA384()),
    "ecdsa-sha2-nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
RSA_SIGNATURES: dict[str, hashes.HashAlgorithm] = {"rsa-sha2-256": hashes.SHA256(), "rsa-sha2-512": hashes.SHA512()}
RSA_MIN_BITS = 1024
KEY_TYPES = (ED25519, *ECDSA_CURVES, RSA)


@dataclass(frozen=True)
class PublicKey:
    """One public key, held as its SSH wire blob (two keys are the same key when their blobs are equal)."""

    blob: bytes

    @property
    def key_type(self) -> str:
        return Reader(self.blob, "public key").text()

    @property
    def fingerprint(self) -> str:
        """`SHA256:…` as `ssh-keygen -l` prints it (unpadded base64 of the blob's sha256)."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def openssh(self) -> str:
        """`TYPE BASE64`, as in a .pub file or an allowed_signers line (no comment)."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode()}"

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A key from `TYPE BASE64 [comment]` (a .pub file's line); its type must match the blob's."""
        fields = text.strip().split()
        if len(fields) < 2:
            raise MalformedSignature(f"{text.strip()[:40]!r} is not an OpenSSH public key (TYPE BASE64 [comment])")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            raise MalformedSignature(f"the base64 of the {fields[0]} public key is not valid") from None
        key = cls(blob)
        if key.key_type != fields[0]:
            raise MalformedSignature(f"a public key says {fields[0]} but holds a {key.key_type} key")
        return key

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check an SSH signature blob (`string algorithm, string signature`) over `data`; raise when it fails."""
        reader = Reader(signature, "signature")
        algorithm = reader.text()
        raw = reader.string()
        reader.end()
        key_type = self.key_type
        try:
            if key_type == ED25519:
                self._ed25519(algorithm).verify(raw, data)
            elif key_type in ECDSA_CURVES:
                self._verify_ecdsa(algorithm, raw, data)
            elif key_type == RSA:
                self._verify_rsa(algorithm, raw, data)
            else:
                raise UnsupportedKey(
                    f"{key_type} keys are not supported",
                    hint="Use an ed25519 key: ssh-keygen -t ed25519 -f ~/.ssh/conveyor",
                )
        except InvalidSignature:
            raise BadSignature(f"the signature by {self} does not match the signed data") from None

    def _ed25519(self, algorithm: str) -> ed25519.Ed25519PublicKey:
        if algorithm != ED25519:
            raise BadSignature(f"an {algorithm} signature cannot come from an ed25519 key")
        reader = Reader(self.blob, "ed25519 public key")
        reader.text()
        point = reader.string()
        reader.end()
        if len(point) != 32:
            raise MalformedSignature("an ed25519 public key must hold 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(point)

    def _verify_ecdsa(self, algorithm: str, raw: bytes, data: bytes) -> None:
        key_type = self.key_type
        if algorithm != key_type:
            raise BadSignature(f"an {algorithm} signature cannot come from an {key_type} key")
        curve, digest = ECDSA_CURVES[key_type]
        reader = Reader(self.blob, "ECDSA public key")
        reader.text()
        if reader.text() != key_type.rsplit("-", 1)[1]:
            raise MalformedSignature(f"the {key_type} public key names another curve")
        point = reader.string()
        reader.end()
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError:
            raise MalformedSignature(f"the {key_type} public key is not a point on its curve") from None
        numbers = Reader(raw, "ECDSA signature")
        r, s = numbers.mpint(), numbers.mpint()
        numbers.end()
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))

    def _verify_rsa(self, algorithm: str, raw: bytes, data: bytes) -> None:
        if algorithm not in RSA_SIGNATURES:
            raise UnsupportedKey(
                f"RSA signatures of type {algorithm} are refused (SHA-1)"
                if algorithm == RSA
                else f"{algorithm} is not an RSA signature algorithm",
                hint="Sign with rsa-sha2-512 (ssh-keygen -Y sign does), or use an ed25519 key.",
            )
        reader = Reader(self.blob, "RSA public key")
        reader.text()
        exponent, modulus = reader.mpint(), reader.mpint()
        reader.end()
        if modulus.bit_length() < RSA_MIN_BITS:
            raise UnsupportedKey(f"RSA keys shorter than {RSA_MIN_BITS} bits are refused")
        public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
        public.verify(raw, data, padding.PKCS1v15(), RSA_SIGNATURES[algorithm])
