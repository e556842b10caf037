"""Base images: the configured one (python:3.11-slim by default) or, where nothing can be pulled, one made from
Debian packages with mmdebstrap and cached by its inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from conveyor.errors import ConveyorError
from conveyor.package.cache import cache_dir, input_key
from conveyor.package.engine import ContainerEngine, EngineError

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, matching the locked cp311 wheels
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
LOCAL_REPOSITORY = "localhost/conveyor-python"
Progress = Callable[[str], None]


def requested_base_image(value: str | None = None) -> str:
    return value or os.environ.get("CONVEYOR_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def _mmdebstrap_version(binary: str) -> str:
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def debian_base_reference(suite: str = DEBIAN_SUITE, packages: tuple[str, ...] = DEBIAN_PACKAGES) -> tuple[str, str]:
    """(image reference, cache key) of the Debian base image for these inputs."""
    binary = shutil.which("mmdebstrap")
    key = input_key(
        {
            "suite": suite,
            "packages": sorted(packages),
            "variant": "apt",
            "tool": _mmdebstrap_version(binary) if binary else "mmdebstrap",
        }
    )
    return f"{LOCAL_REPOSITORY}:{suite}-{key[:12]}", key


def build_debian_base(
    engine: ContainerEngine,
    suite: str = DEBIAN_SUITE,
    packages: tuple[str, ...] = DEBIAN_PACKAGES,
    force: bool = False,
    progress: Progress | None = None,
) -> str:
    """Make (or reuse) a Python base image from Debian packages; returns its reference.

    The root filesystem tarball is cached in conveyor's cache folder keyed by suite, packages and mmdebstrap's
    version, so a machine makes it once and imports it again in seconds.
    """
    say = progress or (lambda _message: None)
    binary = shutil.which("mmdebstrap")
    if not binary:
        raise EngineError(
            "mmdebstrap is not installed, so no base image can be made from Debian packages",
            hint="Install it (apt-get install mmdebstrap, or scripts/install-container-engine.sh), or pass "
            "--base-image with an image your engine already has.",
        )
    reference, key = debian_base_reference(suite, packages)
    if not force and engine.has_image(reference):
        return reference
    folder = cache_dir("base-images", key[:32])
    tarball = folder / "rootfs.tar"
    if force or not tarball.is_file():
        say(f"making a {suite} root filesystem with {', '.join(packages)} (mmdebstrap, about a minute)")
        partial = folder / "rootfs.tar.partial"
        command = [
            binary,
            "--variant=apt",
            "--format=tar",
            f"--include={','.join(packages)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
            suite,
            str(partial),
        ]
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-10:])
            raise EngineError(
                f"mmdebstrap failed to make the {suite} base image:\n{tail}",
                hint="It needs Debian's package mirror and root (or unshare) rights.",
            )
        partial.replace(tarball)
    say(f"importing the base image as {reference}")
    engine.import_rootfs(
        tarball,
        reference,
        changes=[
            "ENV LANG=C.UTF-8",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["python3"]',
        ],
    )
    return reference


def ensure_base_image(engine: ContainerEngine, requested: str | None, progress: Progress | None = None) -> str:
    """The base image to build on: `requested` if the engine has it or can pull it; when the default cannot be
    pulled, the Debian-made one (made now if needed, with a message saying so)."""
    say = progress or (lambda _message: None)
    reference = requested_base_image(requested)
    if engine.has_image(reference):
        return reference
    if reference.startswith(f"{LOCAL_REPOSITORY}:"):
        raise EngineError(
            f"base image {reference} is not in {engine.name}'s storage",
            hint="Make it with `conveyor base-image build`.",
        )
    say(f"pulling base image {reference}")
    if engine.pull(reference):
        return reference
    if reference != DEFAULT_BASE_IMAGE:
        raise EngineError(
            f"base image {reference} cannot be pulled (no registry reachable?) and {engine.name} does not have it",
            hint="Run `conveyor base-image build` and pass the reference it prints with --base-image, "
            "or make the image available to the engine.",
        )
    local, _ = debian_base_reference()
    say(
        f"cannot pull {reference}: using a base image made from Debian packages instead ({local}); "
        "`conveyor base-image build` makes it ahead of time"
    )
    try:
        return build_debian_base(engine, progress=progress)
    except EngineError as error:
        raise ConveyorError(
            f"cannot pull {reference}, and no local base image could be made: {error.message}",
            hint=error.hint or "Run `conveyor base-image build`, or pass --base-image with a local image.",
        ) from None
