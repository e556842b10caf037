"""Packaging: a model version + its registered inference code + a hashed lock → a content-addressed package,
a reproducible archive and an OCI image, recorded in build.json."""

from conveyor.package.baseimage import build_debian_base
from conveyor.package.builder import build
from conveyor.package.engine import ContainerEngine, find_engine
from conveyor.package.manifest import PackageManifest, check_package
from conveyor.package.record import BuildRecord, CorruptBuildRecord, find_build, list_builds, short_digest
from conveyor.package.verify import Verification, verify, verify_build, verify_path

__all__ = [
    "BuildRecord",
    "ContainerEngine",
    "CorruptBuildRecord",
    "PackageManifest",
    "Verification",
    "build",
    "build_debian_base",
    "check_package",
    "find_build",
    "find_engine",
    "list_builds",
    "short_digest",
    "verify",
    "verify_build",
    "verify_path",
]
