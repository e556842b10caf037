"""Serving an OCI image: `podman run` with the container's scoring port published on host:port."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conveyor.errors import ConveyorError

IMAGE_PORT = 8080  # where a conveyor-built image's `conveyor serve` listens inside the container
RUNC = "/usr/sbin/runc"


def containers_conf() -> Path:
    """A containers.conf with no default ulimits (processes here may not raise rlimits)."""
    path = Path(tempfile.gettempdir()) / "conveyor-containers.conf"
    if not path.exists():
        path.write_text("[containers]\ndefault_ulimits = []\n")
    return path


def podman_command(image: str, host: str, port: int, workers: int | None = None) -> list[str]:
    """The `podman run` command line that serves `image` on host:port."""
    podman = shutil.which("podman")
    if podman is None:
        raise ConveyorError(
            f"cannot serve image {image}: podman is not installed",
            hint="Install podman (apt-get install -y podman runc), or serve the package directory instead.",
        )
    command = [podman]
    if Path(RUNC).exists():
        command += ["--runtime", RUNC]
    command += ["run", "--rm", "--init", "-p", f"{host}:{port}:{IMAGE_PORT}"]
    if workers:
        command += ["-e", f"CONVEYOR_SERVE_WORKERS={workers}"]
    return [*command, image]


def run_image(image: str, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> int:
    """Run the image in the foreground until it exits or is interrupted; returns podman's exit code."""
    command = podman_command(image, host, port, workers)
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(containers_conf()))
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130
