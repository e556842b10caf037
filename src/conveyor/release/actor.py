"""Who is acting: `--as`, `$CONVEYOR_USER`, the CI's own variables, else the operating-system user."""

from __future__ import annotations

import getpass
import os

ACTOR_VARIABLES = ("CONVEYOR_USER", "GITHUB_ACTOR", "BUILD_REQUESTEDFOR", "RELEASE_REQUESTEDFOR")


def current_actor(explicit: str | None = None) -> str:
    """The acting person's name, recorded on every ledger entry."""
    if explicit and explicit.strip():
        return explicit.strip()
    for variable in ACTOR_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
