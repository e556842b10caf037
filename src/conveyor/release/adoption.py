"""The first adoption of a policy by a ledger: what is adopted, said plainly, and in CI only the commit named.

A ledger with no policy adopts the project's on its first request (or `release policy propose`): the committed
conveyor.toml and allowed_signers at HEAD. HEAD may be a commit no one reviewed, so the adoption prints what it
adopts (principals, their keys' SHA256 fingerprints as `ssh-keygen -l` prints them, the stages' approvers, the
builders, the commit), and in CI (`CI=true`) it adopts only when the command names that commit: `--adopt COMMIT`
or `$CONVEYOR_ADOPT` (the full hash or a prefix of at least 7 hex digits; outside git, the policy digest). A
commit named on a laptop must match too.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.trust import PublicKey

if TYPE_CHECKING:
    from conveyor.release.policy import PolicySet

ADOPT_ENV = "CONVEYOR_ADOPT"
CI_ENV = "CI"
PREFIX = re.compile(r"[0-9a-f]{7,64}")


def in_ci() -> bool:
    """`CI=true` (or 1), as GitHub Actions, GitLab CI and most CI systems set it."""
    return os.environ.get(CI_ENV, "").strip().lower() in ("true", "1", "yes")


def summary(policy: PolicySet, commit: str | None) -> str:
    """What a first adoption adopts, one line per principal's key, stage and builder list."""
    source = f"commit {commit}" if commit else "this project file (not in a git work tree)"
    lines = [f"adopting the release policy of {source} (policy {policy.digest}):"]
    for entry in policy.signers:
        public = PublicKey.parse(entry[1])
        window = f", {entry[2]}" if len(entry) > 2 else ""
        lines.append(f"  signer {entry[0]}: {public.fingerprint} ({public.key_type}{window})")
    for name, stage in sorted(policy.stages.items()):
        lines.append(f"  release.{name}: approvers {stage.describe_approvers()}, min_approvals {stage.min_approvals}")
    lines.append(f"  trust.builders: {', '.join(policy.builders) or 'none'}")
    return "\n".join(lines)


def require_named(policy: PolicySet, commit: str | None, adopt: str | None) -> None:
    """Say what is adopted (stderr); refuse (exit 2) when `adopt` or $CONVEYOR_ADOPT names something else, and in
    CI when neither names it."""
    text = summary(policy, commit)
    expected = commit or policy.digest.removeprefix("sha256:")
    what = "commit" if commit else "policy digest"
    named = (adopt or os.environ.get(ADOPT_ENV) or "").strip().lower().removeprefix("sha256:")
    matches = bool(PREFIX.fullmatch(named)) and expected.startswith(named)
    if (in_ci() or named) and not matches:  # in CI it must be named; named anywhere, it must match
        given = f"--adopt/${ADOPT_ENV} names {named}" if named else f"neither --adopt nor ${ADOPT_ENV} is set"
        raise ConveyorError(
            f"the ledger holds no policy yet, and it adopts only the {what} the command names ({given}); "
            f"this is {what} {expected}\n{text}",
            hint=f"Review what it adopts above; if that is the reviewed {what}, pass --adopt {expected} "
            f"(or set {ADOPT_ENV}={expected}) for this first run.",
        )
    print(text, file=sys.stderr)
