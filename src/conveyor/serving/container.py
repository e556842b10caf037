"""Serving an OCI image: the container engine runs it with the container's scoring port published on host:port.

The engine comes from `conveyor.package.engine`, set up as everywhere else in conveyor (runtime and
containers.conf where this machine needs them).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.package.engine import ContainerEngine, find_engine
from conveyor.package.image import PORT as IMAGE_PORT

if TYPE_CHECKING:
    from conveyor.serving.options import ServeOptions


def run_command(engine: ContainerEngine, image: str, options: ServeOptions) -> list[str]:
    """The engine's `run` command line that serves `image` on the options' host:port with the other options.

    No `--init`: the server's supervisor is a fine process 1 (it handles SIGTERM/SIGINT and reaps every child)."""
    publish = f"{options.host}:{options.port}:{IMAGE_PORT}"
    return engine.command("run", "--rm", "-p", publish, image, *options.arguments())


def run_image(image: str, options: ServeOptions, engine: str | None = None) -> int:
    """Run the image in the foreground until it exits; SIGTERM and SIGINT are passed on to it (the container's server
    stops gracefully). Returns the engine's exit code."""
    chosen = find_engine(engine)
    if not chosen.can_run:
        raise ConveyorError(
            f"cannot serve image {image} with {chosen.name}: it builds images but does not run them",
            hint="Install podman (scripts/install-container-engine.sh) or docker, or serve the package directory.",
        )
    process = subprocess.Popen(run_command(chosen, image, options), env={**os.environ, **chosen.env})

    def forward(signum: int, frame: Any) -> None:  # the engine passes it on to the container's server
        process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
