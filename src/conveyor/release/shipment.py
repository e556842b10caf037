"""What a release ships, as its signed request recorded it, and the check that the bytes at hand are exactly that.

A deployment reads the package digest, the image's manifest digest and the attestation digests from the ledger,
never from build.json, and refuses to go on when the content-addressed archives hold anything else.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conveyor.errors import CheckFailed


@dataclass(frozen=True)
class Attestation:
    """A signed attestation the ledger recorded for the build: its DSSE envelope's digest and where it is kept."""

    digest: str
    predicate_type: str
    path: Path

    def read(self) -> bytes:
        """The envelope's bytes, refused unless they hash to the recorded digest."""
        try:
            data = self.path.read_bytes()
        except OSError:
            raise CheckFailed(
                f"attestation {self.digest} recorded for this release is missing from {self.path}",
                hint="Restore the build folder (its attestations are kept beside build.json).",
            ) from None
        found = "sha256:" + hashlib.sha256(data).hexdigest()
        if found != self.digest:
            raise CheckFailed(
                f"attestation {self.path.name} hashes to {found}, not the {self.digest} the ledger recorded",
                hint="The envelope was changed after the release was requested; nothing is shipped.",
            )
        return data


@functools.lru_cache(maxsize=4096)
def _path(text: str) -> Path:
    """Paths recorded in requests: the same few recur in every event of a ledger (Paths are immutable)."""
    return Path(text)


@dataclass(frozen=True)
class Shipment:
    """What the ledger recorded for a release, and so the only thing a deployment may ship."""

    package_digest: str
    image_digest: str | None
    image_archive: Path | None
    package_dir: Path | None
    model_name: str | None
    model_version: str | None
    attestations: tuple[Attestation, ...] = ()
    training_sandbox: str | None = None  # as the signed provenance says: `none` is a model trained unconfined
    source_dirty: bool | None = None  # the source tree had uncommitted changes when the model was trained

    @property
    def short(self) -> str:
        return self.package_digest.removeprefix("sha256:")[:12]

    def to_json(self, model_env: str | None) -> dict[str, Any]:
        """The shipment as a signed request records it (`build`), with the environment whose registry holds the
        model."""
        return {
            "package": self.package_digest,
            "image": self.image_digest,
            "image_archive": None if self.image_archive is None else str(self.image_archive),
            "package_dir": None if self.package_dir is None else str(self.package_dir),
            "model": {"name": self.model_name, "version": self.model_version},
            "model_env": model_env,
            "attestations": [
                {"digest": a.digest, "predicate_type": a.predicate_type, "path": str(a.path)} for a in self.attestations
            ],
            "training": {"sandbox": self.training_sandbox, "dirty": self.source_dirty},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shipment:
        """The shipment a request's `build` records (its `model_env` is the release's, not the shipment's)."""
        model = data.get("model") or {}
        training = data.get("training") or {}
        return cls(
            package_digest=str(data["package"]),
            image_digest=data.get("image"),
            image_archive=_path(data["image_archive"]) if data.get("image_archive") else None,
            package_dir=_path(data["package_dir"]) if data.get("package_dir") else None,
            model_name=model.get("name"),
            model_version=None if model.get("version") is None else str(model["version"]),
            attestations=tuple(
                Attestation(str(a["digest"]), str(a["predicate_type"]), _path(str(a["path"])))
                for a in data.get("attestations", ())
            ),
            training_sandbox=training.get("sandbox"),
            source_dirty=training.get("dirty"),
        )

    def found_in(self, state_dir: Path) -> Shipment:
        """The same shipment, each recorded file that is not where the request was made looked for in this
        project's own build folder (named by the package digest): a deployment may run on another machine than
        the request. Every file is still checked against its recorded digest before it ships."""
        folder = state_dir / "builds" / self.package_digest.removeprefix("sha256:")

        def here(recorded: Path | None, local: Path) -> Path | None:
            if recorded is not None and recorded.exists():
                return recorded
            return local if local.exists() else recorded

        return replace(
            self,
            image_archive=here(self.image_archive, folder / "image.oci.tar"),
            package_dir=here(self.package_dir, folder / "package"),
            attestations=tuple(
                replace(a, path=here(a.path, folder / "attestations" / a.path.name) or a.path)
                for a in self.attestations
            ),
        )

    def require_image(self, stage: str) -> tuple[Path, str]:
        """The image archive and the recorded manifest digest; CheckFailed when the release has no image."""
        if self.image_archive is None or self.image_digest is None:
            raise CheckFailed(
                f"build {self.short} has no image, so it cannot go to {stage}",
                hint="Build the image with `conveyor build` (needs podman or docker), test it, and request again.",
            )
        return self.image_archive, self.image_digest


def check_image(shipment: Shipment, stage: str) -> str:
    """Hash every blob of the image archive; its manifest must be the one recorded. Returns the config digest."""
    from conveyor.package.image import read_oci_archive

    archive, recorded = shipment.require_image(stage)
    info = read_oci_archive(archive, check_blobs=True)
    if info.digest != recorded:
        raise CheckFailed(
            f"image archive {archive} holds manifest {info.digest}, but the ledger recorded {recorded} for this "
            "release",
            hint="The archive was replaced after the build was tested; only the recorded image ships. Restore it "
            "from the build, or build, test and request again.",
        )
    return info.config_digest


def check_package(shipment: Shipment) -> Path:
    """The package folder, its files hashed against the manifest whose digest the ledger recorded."""
    from conveyor.package.manifest import check_package as check_manifest

    folder = shipment.package_dir
    if folder is None or not folder.is_dir():
        raise CheckFailed(
            f"build {shipment.short} has no package folder at {folder}", hint="Restore the build folder or rebuild."
        )
    check_manifest(folder, shipment.package_digest)
    return folder
