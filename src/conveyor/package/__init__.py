"""Packaging: a model version + its registered inference code + a hashed lock → a content-addressed package,
a reproducible archive and an OCI image, recorded in build.json."""

from conveyor.package.builder import build
from conveyor.package.manifest import PackageManifest, check_package
from conveyor.package.record import BuildRecord, CorruptBuildRecord, find_build
from conveyor.package.verify import Verification, verify_build, verify_path

__all__ = [
    "BuildRecord",
    "CorruptBuildRecord",
    "PackageManifest",
    "Verification",
    "build",
    "check_package",
    "find_build",
    "verify_build",
    "verify_path",
]
