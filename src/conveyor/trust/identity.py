"""Who acts: the principal whose public key, listed in allowed_signers, belongs to the acting signing key.

Never a typed name: `--as`, `$USER` or a CI variable cannot make anyone act as someone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.trust.allowed_signers import AllowedSigners, KeyNotValid
from conveyor.trust.errors import NotAllowedSigner, SignatureRefused
from conveyor.trust.sshsig import NAMESPACE

if TYPE_CHECKING:
    from datetime import datetime

    from conveyor.trust.keys import SigningKey


@dataclass(frozen=True)
class Identity:
    """A principal of allowed_signers and the key that makes it so."""

    principal: str
    key: SigningKey

    def __str__(self) -> str:
        return f"{self.principal} ({self.key.fingerprint})"


def identify(
    allowed: AllowedSigners, key: SigningKey, namespace: str = NAMESPACE, at: datetime | None = None
) -> Identity:
    """The identity of `key`: NotAllowedSigner (exit 2) naming the fix when allowed_signers does not list it for
    `namespace` now (a signature by it would be refused); KeyNotValid (exit 1) naming the principal and the window
    when the key is listed but outside its valid-after/valid-before window."""
    try:
        principal = allowed.signer(key.public, namespace, at)
    except KeyNotValid as error:
        raise KeyNotValid(f"{error.message} (the key from {key.source})", hint=error.hint) from None
    except SignatureRefused as error:
        listed = any(entry.key == key.public for entry in allowed.entries)
        hint = (
            error.hint
            if listed
            else (
                f"Add the line `NAME {key.public.openssh()}` to {allowed.source} and commit it (NAME is who the key "
                "belongs to), or pass --key PATH with a key listed there."
            )
        )
        raise NotAllowedSigner(f"{error.message} (the key from {key.source})", hint=hint) from None
    return Identity(principal, key)
