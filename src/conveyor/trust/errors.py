"""What can go wrong with keys and signatures, each with its exit code.

A signature that does not hold is a failed check (exit 1, a `CheckFailed`); a key that is missing, unreadable or
not listed in allowed_signers, or an allowed_signers file that cannot be read, is a usage or configuration error
(exit 2) whose hint names the command that fixes it.
"""

from __future__ import annotations

from conveyor.errors import CheckFailed, ConfigError, ConveyorError

MAKE_KEY = "ssh-keygen -t ed25519 -f ~/.ssh/conveyor"


class SignatureRefused(CheckFailed):
    """A signature or envelope did not verify; the subclass and the message say why."""


class MalformedSignature(SignatureRefused):
    """The signature, key or envelope is not in the format it claims (truncated, wrong magic, bad base64)."""


class BadSignature(SignatureRefused):
    """The signature does not match the message: the message or the signature was changed."""


class UnknownSigner(SignatureRefused):
    """The signing key is not in allowed_signers (or not for this principal, namespace or time)."""


class WrongNamespace(SignatureRefused):
    """The signature was made for another purpose (namespace) than the one checked."""


class UnsupportedKey(SignatureRefused):
    """A key or signature algorithm this verifier does not accept (e.g. ssh-rsa with SHA-1, DSA, security keys)."""


class AllowedSignersError(ConfigError):
    """The allowed_signers file is missing or has a line that cannot be read."""


class SigningKeyError(ConveyorError):
    """No signing key was found, or the one named cannot be read or used."""


class NotAllowedSigner(ConveyorError):
    """The signing key works but is not listed in allowed_signers (or the policy in force), so it names no one.

    A refused signature, like a forged one: exit code 1.
    """

    exit_code = 1
