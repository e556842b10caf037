"""Trust: identities are SSH keys, and attestations are signed in-toto Statements in DSSE envelopes.

Nothing here is invented: keys and signatures are OpenSSH's (allowed_signers as `ssh-keygen -Y verify` reads it,
signatures in PROTOCOL.sshsig's wire format, byte for byte what `ssh-keygen -Y sign` writes, namespace
`conveyor`), and attestations are in-toto Statement v1 carried in DSSE v1 envelopes. This room imports only
`conveyor.errors` and `conveyor.secrets.redaction`.

The API (stable; other rooms build on it):

- `AllowedSigners.load(path)` / `.parse(text)`: the file of who may sign. `.principal_of(public_key) -> str | None`
  (the first plain name on the key's line), `.principals -> set[str]`, `.keys_of(principal)`,
  `.signer(key, namespace, at) -> str` (the principal, or UnknownSigner/WrongNamespace naming why).
  `cert-authority` lines are refused (AllowedSignersError, exit 2).
- `load_signing_key(option: Path | None, *, cwd=None) -> SigningKey`: `--key PATH`, else
  `$CONVEYOR_SIGNING_KEY` (a path, the private key text itself, registered with redaction, or a public key
  line for ssh-agent), else git's `user.signingkey` with `gpg.format = ssh` (a path, or `key::ssh-ed25519 AAAA…`).
  SigningKeyError (exit 2) naming `ssh-keygen -t ed25519 -f ~/.ssh/conveyor` and the three ways to pass a key
  when there is none. `SigningKey.public` is its `PublicKey` (`.openssh()`, `.fingerprint`, `.blob`).
  `make_key(path, comment)` writes a new unencrypted ed25519 key pair as ssh-keygen does (PATH, PATH.pub).
- `identify(allowed, key) -> Identity(principal, key)`: the acting principal is the one whose key is in
  allowed_signers, never a typed name; NotAllowedSigner (exit 1) with the line to add when the key is not there.
- `sign(message, key, namespace="conveyor") -> str` (armored `-----BEGIN SSH SIGNATURE-----`) and
  `verify(message, signature, allowed, namespace="conveyor", at=None) -> str` (the principal). Verification runs
  in this process with `cryptography` (ed25519, ecdsa-sha2-nistp256/384/521, rsa-sha2-256/512); signing too for an
  unencrypted key, else through `ssh-keygen -Y sign` (ssh-agent, or the passphrase). `sign_blob` gives the raw
  sshsig blob; `verify` accepts the armored text or the blob.
- Refusals are `SignatureRefused` (a `CheckFailed`, exit 1): `BadSignature` (message or signature changed),
  `UnknownSigner` (key not in allowed_signers, or, as its subclass `KeyNotValid`, not valid at that time:
  valid-after/valid-before), `WrongNamespace`,
  `MalformedSignature`, `UnsupportedKey`.
- `Statement(subject, predicate_type, predicate)` with `Subject.sha256(name, digest)`: in-toto Statement v1.
  Predicate types: `SLSA_PROVENANCE`, `TEST_RESULT`.
- `Envelope` (DSSE; payloadType `application/vnd.in-toto+json`, `signatures[{keyid, sig}]` where `sig` is the
  base64 sshsig blob over PAE(payloadType, payload) and `keyid` the key's SHA256 fingerprint), with `.digest`
  (sha256 of its canonical JSON), `.save(path)`, `Envelope.load(path)`; `sign_statement(statement, key) ->
  Envelope`, `verify_envelope(envelope, allowed) -> (principal, Statement)`.
"""

from conveyor.trust.allowed_signers import AllowedSigner, AllowedSigners, KeyNotValid
from conveyor.trust.dsse import IN_TOTO, Envelope, EnvelopeSignature, pae, sign_statement, verify_envelope
from conveyor.trust.errors import (
    AllowedSignersError,
    BadSignature,
    MalformedSignature,
    NotAllowedSigner,
    SignatureRefused,
    SigningKeyError,
    UnknownSigner,
    UnsupportedKey,
    WrongNamespace,
)
from conveyor.trust.identity import Identity, identify
from conveyor.trust.intoto import SLSA_PROVENANCE, STATEMENT_TYPE, TEST_RESULT, Statement, Subject
from conveyor.trust.keys import ENV_VARIABLE, SigningKey, load_signing_key, make_key
from conveyor.trust.publickey import PublicKey
from conveyor.trust.sshsig import NAMESPACE, SshSignature, sign, sign_blob, verify

__all__ = [
    "ENV_VARIABLE",
    "IN_TOTO",
    "NAMESPACE",
    "SLSA_PROVENANCE",
    "STATEMENT_TYPE",
    "TEST_RESULT",
    "AllowedSigner",
    "AllowedSigners",
    "AllowedSignersError",
    "BadSignature",
    "Envelope",
    "EnvelopeSignature",
    "Identity",
    "KeyNotValid",
    "MalformedSignature",
    "NotAllowedSigner",
    "PublicKey",
    "SignatureRefused",
    "SigningKey",
    "SigningKeyError",
    "SshSignature",
    "Statement",
    "Subject",
    "UnknownSigner",
    "UnsupportedKey",
    "WrongNamespace",
    "identify",
    "load_signing_key",
    "make_key",
    "pae",
    "sign",
    "sign_blob",
    "sign_statement",
    "verify",
    "verify_envelope",
]
