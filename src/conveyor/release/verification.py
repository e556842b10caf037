"""Before anything ships: the package room's byte-for-byte check of a build (package, archive and image archive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.package.record import BuildRecord

BuildVerifier = Callable[[Path], object]


def package_verifier() -> BuildVerifier:
    """`conveyor.package.verify_build`: raises CheckFailed when any byte of the package or image changed."""
    try:
        from conveyor.package import verify_build
    except ImportError:
        raise ConveyorError(
            "this conveyor cannot verify builds: conveyor.package.verify_build is not available",
            hint="Install a conveyor whose package module provides verify_build; nothing is released unverified.",
        ) from None
    return verify_build


def verify_release_build(build: BuildRecord) -> None:
    """Refuse a tampered build. `verify_build` hashes every blob of the image archive and checks its manifest
    digest against the tested one, so the archive is read once."""
    package_verifier()(build.path)
