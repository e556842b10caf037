"""Who acts on the ledger: the principal whose key signs, as the project's allowed_signers and the ledger's policy
in force both list it. Never a typed name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.release.policy import PolicySet, allowed_signers_path
from conveyor.trust import AllowedSigners, Identity, NotAllowedSigner, SigningKey, identify, load_signing_key

if TYPE_CHECKING:
    from conveyor.config import Project

KeyChoice = SigningKey | Path | None


def signing_key(project: Project, key: KeyChoice) -> SigningKey:
    """`key` itself, the file it names, or (None) `$CONVEYOR_SIGNING_KEY`, git's user.signingkey, ~/.ssh/conveyor."""
    if isinstance(key, SigningKey):
        return key
    return load_signing_key(key, cwd=project.root)


def acting_identity(project: Project, key: KeyChoice, expect: str | None = None) -> Identity:
    """The identity of the acting key in the project's allowed_signers; `expect` (from --as) must be its principal.

    Exit 2 with the fix when there is no key or it names someone else than `expect`; exit 1 when it is not listed.
    """
    identity = identify(AllowedSigners.load(allowed_signers_path(project)), signing_key(project, key))
    if expect is not None and expect != identity.principal:
        raise ConveyorError(
            f"--as {expect} does not match the signing key, which is {identity.principal}'s "
            f"({identity.key.fingerprint})",
            hint=f"conveyor names who acts by the key that signs: pass {expect}'s key with --key PATH (or "
            "$CONVEYOR_SIGNING_KEY), or leave out --as.",
        )
    return identity


def require_in_force(identity: Identity, policy: PolicySet) -> None:
    """The key must be one the ledger's policy in force lists for its principal (exit 1 with the fix)."""
    listed = (identity.principal, identity.key.public.openssh())
    if listed not in policy.signer_keys():
        raise NotAllowedSigner(
            f"{identity.principal}'s key {identity.key.fingerprint} is in allowed_signers, but not in the policy the "
            "ledger holds in force",
            hint="A new or changed key is a change of policy: propose it with `conveyor release policy propose`, "
            "and have the approvers approve it (conveyor release policy approve).",
        )
