"""Options shared by many commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.config import ENV_VARIABLE, Environment, Project, chosen_environment, load_project

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        callback=chosen_environment,  # the option given, else $CONVEYOR_ENV: read where the project reads it
        help=f"Environment to act in (dev, stage, prod...). Default: ${ENV_VARIABLE}.",
        show_default=False,
    ),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        envvar="CONVEYOR_PROJECT",
        help="Project folder (default: the one holding the current folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="SSH key that signs as you (a private key, or a .pub whose private half is in ssh-agent). Default: "
        "$CONVEYOR_SIGNING_KEY (a path or the key text), else git's user.signingkey (gpg.format=ssh), else "
        "~/.ssh/conveyor. Who acts is the principal allowed_signers lists for that key. Make one: "
        "ssh-keygen -t ed25519 -f ~/.ssh/conveyor",
        show_default=False,
    ),
]


def project_and_env(project: Path | None, env: str | None) -> tuple[Project, Environment]:
    loaded = load_project(project)
    return loaded, loaded.environment(env)
