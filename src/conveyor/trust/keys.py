"""The acting signing key: `--key PATH`, else `$CONVEYOR_SIGNING_KEY`, else git's `user.signingkey`, else
`~/.ssh/conveyor` when that file exists (the key the README has everyone make).

- `--key PATH`: a private key file (OpenSSH or PEM), or a public key file whose private half is in ssh-agent.
- `$CONVEYOR_SIGNING_KEY`: a path as above, or the private key text itself, as CI secret stores hand it over
  (the text is registered with redaction, so it is never printed), or a public key line for ssh-agent.
- git's `user.signingkey` when `gpg.format = ssh`, read as git reads it: a path to a private or public key, or a
  literal `key::ssh-ed25519 AAAA…` whose private half is in ssh-agent.

An unencrypted private key signs in this process. An encrypted key, or a key held by ssh-agent, signs through
`ssh-keygen -Y sign`, which asks the agent first and then for the passphrase, exactly as git does.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conveyor.secrets.redaction import register_secret
from conveyor.trust.errors import MAKE_KEY, MalformedSignature, SigningKeyError
from conveyor.trust.publickey import ECDSA_CURVES, KEY_TYPES, PublicKey
from conveyor.trust.wire import Reader, mpint, string

ENV_VARIABLE = "CONVEYOR_SIGNING_KEY"
DEFAULT_KEY = "~/.ssh/conveyor"
OPENSSH_MAGIC = b"openssh-key-v1\x00"
PRIVATE_MARKERS = (
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
)
PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
HOW_TO = (
    f"Make a key with `{MAKE_KEY}`, add `NAME $(cat ~/.ssh/conveyor.pub)` to allowed_signers, then pass "
    f"--key ~/.ssh/conveyor, set {ENV_VARIABLE} (a path, or the key text from a CI secret), or set git's "
    "user.signingkey with gpg.format=ssh."
)


@dataclass(frozen=True)
class SigningKey:
    """A key that can sign: its public half, where it came from, and how it signs.

    `private` is set when this process can sign itself; otherwise `path` (or `text`, written to a private
    temporary file) is handed to `ssh-keygen -Y sign`.
    """

    public: PublicKey
    source: str
    private: PrivateKey | None = field(default=None, repr=False, compare=False)
    path: Path | None = None
    text: str | None = field(default=None, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def __str__(self) -> str:
        return f"{self.public} ({self.source})"

    def sign_raw(self, data: bytes) -> bytes:
        """An SSH signature blob (`string algorithm, string signature`) of `data` by the in-process private key."""
        key = self.private
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return string("ssh-ed25519") + string(key.sign(data))
        if isinstance(key, ec.EllipticCurvePrivateKey):
            key_type = self.public.key_type
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(ECDSA_CURVES[key_type][1])))
            return string(key_type) + string(mpint(r) + mpint(s))
        if isinstance(key, rsa.RSAPrivateKey):
            return string("rsa-sha2-512") + string(key.sign(data, padding.PKCS1v15(), hashes.SHA512()))
        raise SigningKeyError(f"{self} cannot sign in this process", hint="Sign through ssh-keygen (ssh-agent).")

    def sign_with_ssh_keygen(self, message: bytes, namespace: str) -> str:
        """The armored signature made by `ssh-keygen -Y sign` (ssh-agent, or the key's passphrase)."""
        ssh_keygen = shutil.which("ssh-keygen")
        if ssh_keygen is None:
            raise SigningKeyError(
                f"signing with {self} needs ssh-keygen, which is not installed",
                hint="Install OpenSSH's client (apt-get install openssh-client), or use an unencrypted key file.",
            )
        with tempfile.TemporaryDirectory(prefix="conveyor-sign-") as tmp:
            agent_only = False
            if self.path is not None:
                key_file = self.path
            else:
                key_file = Path(tmp) / "key"
                agent_only = self.text is None
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(self.text if self.text is not None else self.public.openssh() + "\n")
            command = [ssh_keygen, "-q", "-Y", "sign", "-n", namespace, "-f", str(key_file)]
            done = subprocess.run(
                [*command, *(["-U"] if agent_only else [])], input=message, capture_output=True, check=False
            )
        armored = done.stdout.decode(errors="replace")
        if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in armored:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise SigningKeyError(
                f"ssh-keygen could not sign with {self}: {reason[-1] if reason else f'exit {done.returncode}'}",
                hint="Add the private key to ssh-agent (`ssh-add PATH`), or give conveyor an unencrypted key file "
                "(--key PATH).",
            )
        return armored


def _openssh_public_blob(data: bytes) -> bytes:
    """The public key stored unencrypted at the head of an `openssh-key-v1` private key (PROTOCOL.key)."""
    text = b"".join(line for line in data.strip().splitlines() if not line.startswith(b"-----"))
    try:
        raw = base64.b64decode(text)
    except ValueError:
        raise MalformedSignature("the OpenSSH private key's base64 is not valid") from None
    if not raw.startswith(OPENSSH_MAGIC):
        raise MalformedSignature("not an OpenSSH private key")
    reader = Reader(raw[len(OPENSSH_MAGIC) :], "OpenSSH private key")
    reader.string(), reader.string(), reader.string()  # cipher, kdf, kdf options
    if reader.uint32() != 1:
        raise MalformedSignature("an OpenSSH private key file with several keys is not supported")
    return reader.string()


def _public_of(private: PrivateKey) -> PublicKey:
    text = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return PublicKey.parse(text.decode())


def _load_private(data: bytes) -> PrivateKey | None:
    """The private key in `data`, or None when it is encrypted."""
    key: object
    try:
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        return None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise MalformedSignature(f"the private key cannot be read: {error}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise MalformedSignature(f"{type(key).__name__} keys are not supported; use ed25519, ECDSA or RSA")
    return key


def _is_public_line(text: str) -> bool:
    return text.split(None, 1)[0] in KEY_TYPES if text.strip() else False


def key_from_text(text: str, source: str, path: Path | None = None) -> SigningKey:
    """A key from a private key's text (PEM or OpenSSH) or a public key line (`ssh-ed25519 AAAA…`)."""
    stripped = text.strip()
    try:
        if _is_public_line(stripped):
            return SigningKey(PublicKey.parse(stripped.splitlines()[0]), source, path=path)
        if not stripped.startswith(PRIVATE_MARKERS):
            raise MalformedSignature("it is neither a private key (-----BEGIN … PRIVATE KEY-----) nor a public key")
        data = stripped.encode() + b"\n"
        private = _load_private(data)
        if private is not None:
            return SigningKey(_public_of(private), source, private=private, path=path)
        if b"BEGIN OPENSSH PRIVATE KEY" in data:
            public = PublicKey(_openssh_public_blob(data))
        elif path is not None and path.with_name(path.name + ".pub").is_file():
            public = PublicKey.parse(path.with_name(path.name + ".pub").read_text())
        else:
            raise SigningKeyError(
                f"the encrypted PEM key from {source} has no public key beside it",
                hint="Convert it to OpenSSH's format (`ssh-keygen -p -f PATH`), or put PATH.pub beside it.",
            )
        return SigningKey(public, source, path=path, text=None if path else stripped + "\n")
    except MalformedSignature as error:
        raise SigningKeyError(f"the signing key from {source} cannot be used: {error.message}", hint=HOW_TO) from None


def key_from_file(path: Path, source: str) -> SigningKey:
    """A key from a private key file (which must be readable by its owner only, as ssh requires) or a .pub file."""
    path = path.expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SigningKeyError(f"there is no key file {path} ({source})", hint=HOW_TO) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SigningKeyError(f"cannot read the key file {path} ({source}): {error}", hint=HOW_TO) from None
    if not _is_public_line(text) and stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise SigningKeyError(
            f"the private key {path} can be read by others",
            hint=f"Make it private, as ssh requires: chmod 600 {path}",
        )
    return key_from_text(text, source, path=path)


def _from_environment(value: str) -> SigningKey:
    stripped = value.strip()
    source = f"${ENV_VARIABLE}"
    if stripped.startswith("-----BEGIN"):
        register_secret(value)
        register_secret(stripped)
        for line in stripped.splitlines():
            if not line.startswith("-----"):
                register_secret(line.strip())
        return key_from_text(stripped, source)
    if _is_public_line(stripped):
        return key_from_text(stripped, source)
    return key_from_file(Path(stripped), source)


def _git_config(name: str, cwd: Path | None) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run(
        [git, "config", "--get", name], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _from_git(cwd: Path | None) -> SigningKey | None:
    value = _git_config("user.signingkey", cwd)
    if not value or (_git_config("gpg.format", cwd) or "openpgp").lower() != "ssh":
        return None
    source = "git's user.signingkey"
    if value.startswith("key::"):
        return key_from_text(value.removeprefix("key::"), source)
    if _is_public_line(value):  # git still accepts a bare literal key
        return key_from_text(value, source)
    return key_from_file(Path(value), source)


def make_key(path: Path, comment: str) -> SigningKey:
    """A new ed25519 key pair, written as `ssh-keygen -t ed25519 -N '' -C COMMENT -f PATH` writes it: PATH (OpenSSH
    private key, mode 600, unencrypted) and PATH.pub. Refuses to overwrite an existing file."""
    private = ed25519.Ed25519PrivateKey.generate()
    text = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = _public_of(private)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(
            f"{path} already exists", hint="Choose another path; a key is never overwritten."
        ) from None
    with os.fdopen(fd, "wb") as out:
        out.write(text)
    path.with_name(path.name + ".pub").write_text(f"{public.openssh()} {comment}\n")
    return SigningKey(public, str(path), private=private, path=path)


def load_signing_key(option: Path | None, *, cwd: Path | None = None) -> SigningKey:
    """The acting key: `option` (--key), else $CONVEYOR_SIGNING_KEY, else git's user.signingkey (read in `cwd`),
    else ~/.ssh/conveyor.

    Raises SigningKeyError (exit 2) naming what to do when none is configured or it cannot be used.
    """
    if option is not None:
        return key_from_file(Path(option), "--key")
    value = os.environ.get(ENV_VARIABLE)
    if value and value.strip():
        return _from_environment(value)
    from_git = _from_git(cwd)
    if from_git is not None:
        return from_git
    default = Path(DEFAULT_KEY).expanduser()
    if default.is_file():
        return key_from_file(default, f"{DEFAULT_KEY} (the default key)")
    raise SigningKeyError("no signing key: conveyor names who acts by the key that signs", hint=HOW_TO)
