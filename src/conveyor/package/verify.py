"""`verify`: recompute every digest of a build, package or image archive; any changed byte is a CheckFailed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conveyor.errors import CheckFailed
from conveyor.package.archive import check_archive
from conveyor.package.image import read_oci_archive
from conveyor.package.manifest import MANIFEST, check_package
from conveyor.package.record import BUILD_FILE, BuildRecord


@dataclass
class Verification:
    """What was checked, each line a fact that held."""

    target: Path
    checked: list[str] = field(default_factory=list)


def verify_build(build_json_path: Path | str) -> Verification:
    """Check a build: package files vs manifest, manifest vs digest, archive vs package, image archive vs digest.

    Raises CheckFailed naming every difference; returns what was checked when all holds.
    """
    record = BuildRecord.load(Path(build_json_path))
    result = Verification(record.path)
    manifest = check_package(record.package_dir, record.digest)
    result.checked.append(f"{len(manifest.files)} package files match manifest.json")
    result.checked.append(f"manifest digest is {record.digest}")
    if record.dir.name != record.digest.removeprefix("sha256:"):
        raise CheckFailed(
            f"build folder {record.dir.name} is not named by the package digest {record.digest}",
            hint="A build folder is named by its digest; rename it back or rebuild with `conveyor build`.",
        )
    check_archive(record.archive, record.package_dir)
    result.checked.append(f"{record.archive.name} holds exactly the package's bytes")
    image = record.image
    if image:
        archive = image.archive
        info = read_oci_archive(archive, check_blobs=True)
        if info.digest != image.digest:
            raise CheckFailed(
                f"image archive {archive} has manifest digest {info.digest}, the build recorded {image.digest}",
                hint="The image archive was replaced or rebuilt; rebuild with `conveyor build`.",
            )
        if info.config_digest != image.id:
            raise CheckFailed(f"image archive {archive} has config {info.config_digest}, recorded {image.id}")
        result.checked.append(f"{archive.name}: every blob hashes to its name; manifest digest {info.digest}")
    return result


def verify_path(target: Path) -> Verification:
    """Verify a build (its folder or build.json), a package folder, or an image archive."""
    target = Path(target)
    if target.is_dir() and (target / BUILD_FILE).is_file():
        return verify_build(target / BUILD_FILE)
    if target.is_file() and target.name == BUILD_FILE:
        return verify_build(target)
    if target.is_dir() and (target / MANIFEST).is_file():
        manifest = check_package(target)
        return Verification(
            target, [f"{len(manifest.files)} package files match manifest.json", f"package digest is {manifest.digest}"]
        )
    if target.is_file():
        info = read_oci_archive(target, check_blobs=True)
        return Verification(target, [f"every blob hashes to its name; manifest digest {info.digest}"])
    raise CheckFailed(
        f"{target} is not a build, a package folder or an image archive",
        hint="Pass .conveyor/builds/HEX (or its build.json), its package/ folder, or image.oci.tar.",
    )


def verify_image_in_engine(record: BuildRecord) -> str:
    """The engine's copy of the build's image has the recorded id (config digest)."""
    from conveyor.package.engine import find_engine

    image = record.image
    if not image:
        raise CheckFailed(f"build {record.short} has no image")
    engine = find_engine(image.engine)
    found = engine.image_id(image.reference)
    if found != image.id:
        raise CheckFailed(
            f"{image.reference} in {engine.name} is {found or 'missing'}, the build recorded {image.id}",
            hint="The image was retagged or rebuilt outside conveyor; load image.oci.tar or rebuild.",
        )
    return f"{image.reference} in {engine.name} has the recorded id {found}"
