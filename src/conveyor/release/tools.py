"""Running the external tools a deployment needs (skopeo, podman), with errors a person can act on."""

from __future__ import annotations

import subprocess

from conveyor.errors import CheckFailed, ConveyorError

INSTALL_HINT = "Install it (Debian: apt-get install {tool}; or run scripts/install-release-services.sh)."


def run_tool(args: list[str], what: str, *, timeout: float = 600) -> str:
    """Run `args`; return stdout. A missing tool is a ConveyorError, a failing one a CheckFailed naming `what`."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ConveyorError(
            f"{args[0]} is not installed; it is needed to {what}", hint=INSTALL_HINT.format(tool=args[0])
        ) from None
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"could not {what}: {args[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise CheckFailed(f"could not {what}: {' '.join(detail) or f'{args[0]} exited {done.returncode}'}")
    return done.stdout
