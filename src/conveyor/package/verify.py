"""`verify`: recompute every digest of a build, package or image archive; any changed byte is a CheckFailed.

For a build, every signed attestation beside it is checked too: its signature against the project's
allowed_signers, and its subjects against the package and image actually there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConfigError, ConveyorError, NotFoundError
from conveyor.package.archive import check_archive
from conveyor.package.attestations import (
    AttestationKind,
    CheckedAttestation,
    attestation_path,
    check_attestations,
    require_latest_run,
)
from conveyor.package.image import read_oci_archive
from conveyor.package.manifest import MANIFEST, check_package
from conveyor.package.record import BUILD_FILE, BuildRecord, find_build, find_build_by_image, short_digest
from conveyor.trust import AllowedSigners

if TYPE_CHECKING:
    from conveyor.config import Project


@dataclass
class Verification:
    """What was checked, each line a fact that held."""

    target: Path
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should know, though nothing failed
    attestations: list[CheckedAttestation] = field(default_factory=list)
    signed: bool | None = None  # for a build: whether it carries signed attestations


def verify_build(build_json_path: Path | str, allowed: AllowedSigners | None = None) -> Verification:
    """Check a build: package files vs manifest, manifest vs digest, archive vs package, image archive vs digest,
    and, with `allowed`, every attestation's signature and subjects.

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
    if allowed is not None:
        _check_signed(record, allowed, result)
    return result


def _check_signed(record: BuildRecord, allowed: AllowedSigners, result: Verification) -> None:
    result.attestations = check_attestations(record, allowed)
    result.signed = bool(result.attestations)
    for item in result.attestations:
        require_latest_run(record, item)
        names = ", ".join(f"{name} {short_digest(digest)}" for name, digest in item.subjects.items())
        verdict = "" if item.kind is AttestationKind.PROVENANCE else f" {item.result},"
        result.checked.append(f"{item.path.name}:{verdict} signed by {item.signer}, names {names}")
    missing = [kind.value for kind in AttestationKind if not attestation_path(record, kind).is_file()]
    if not result.attestations:
        result.notes.append("no attestations: the build is unsigned and cannot be released")
    elif missing:
        result.notes.append(f"not yet attested: {', '.join(missing)} (a release needs provenance, tests and gates)")


def _allowed_signers_for(record: BuildRecord, project: Project | None) -> AllowedSigners:
    """The allowed_signers of `project`, else of the project holding the build (none needed when the build
    has no attestation to check)."""
    if not any(attestation_path(record, kind).is_file() for kind in AttestationKind):
        return AllowedSigners(())
    from conveyor.config import load_project

    if project is None:
        try:
            project = load_project(record.project_root)
        except ConfigError:
            raise ConfigError(
                f"build {record.short} has attestations, but no project holds {record.path} to say whose keys "
                "may sign them",
                hint="Pass --project DIR (its [trust] allowed_signers is used), or verify the build in its project.",
            ) from None
    return AllowedSigners.load(project.allowed_signers_file)


def verify(target: str | None = None, project: Project | None = None, env: str | None = None) -> Verification:
    """`conveyor verify`: a path (build folder or build.json, package folder, image archive) is checked as it is;
    anything else names a build of `project` (digest or prefix; default its latest, of `env` when given), or an
    image reference, digest or id of one, whose copy in the container engine is checked too."""
    candidate = Path(target) if target else None
    if candidate is not None and candidate.exists():
        return verify_path(candidate, project)
    if project is None:
        from conveyor.config import load_project

        project = load_project()
    try:
        record = find_build(project.state_dir, target, env)
    except NotFoundError:
        by_image = find_build_by_image(project.state_dir, target) if target else None
        if by_image is None:
            raise
        result = verify_path(by_image.path, project)
        result.checked.append(verify_image_in_engine(by_image))
        return result
    return verify_path(record.path, project)


def verify_path(target: Path, project: Project | None = None) -> Verification:
    """Verify a build (its folder or build.json, with its attestations), a package folder, or an image archive."""
    target = Path(target)
    if (target.is_dir() and (target / BUILD_FILE).is_file()) or (target.is_file() and target.name == BUILD_FILE):
        record = BuildRecord.load(target)
        return verify_build(record.path, _allowed_signers_for(record, project))
    if target.is_dir() and (target / MANIFEST).is_file():
        manifest = check_package(target)
        return Verification(
            target, [f"{len(manifest.files)} package files match manifest.json", f"package digest is {manifest.digest}"]
        )
    if target.is_file() and _is_tar(target):
        info = read_oci_archive(target, check_blobs=True)
        return Verification(target, [f"every blob hashes to its name; manifest digest {info.digest}"])
    raise ConveyorError(  # what was passed is not something verify checks: a usage error (exit 2), not a failure
        f"{target} is neither a build, a package folder nor an image archive",
        hint="Pass .conveyor/builds/HEX (or its build.json), its package/ folder, or image.oci.tar; "
        "or a build's package digest: conveyor verify 3f9a2c",
    )


def _is_tar(path: Path) -> bool:
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


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
