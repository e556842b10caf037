"""`manifest.json`: the sha256 of every packaged file plus what the package is; its canonical hash is the digest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed
from conveyor.package.cache import sha256_file
from conveyor.secrets.boundaries import mask_json

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = "manifest.json"
SKIPPED = ("__pycache__", ".pytest_cache")


def package_files(package_dir: Path) -> list[str]:
    """Every file of a package directory (POSIX relative paths, sorted), leaving out manifest.json and caches."""
    found = []
    for path in package_dir.rglob("*"):
        relative = path.relative_to(package_dir)
        if any(part in SKIPPED for part in relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink():
            raise CheckFailed(f"{path} is a symbolic link; a package holds regular files only")
        if path.is_file() and relative.as_posix() != MANIFEST:
            found.append(relative.as_posix())
    return sorted(found)


def hash_files(package_dir: Path) -> dict[str, str]:
    return {name: f"sha256:{sha256_file(package_dir / name)}" for name in package_files(package_dir)}


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(mask_json(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(data: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(data)).hexdigest()


@dataclass(frozen=True)
class PackageManifest:
    """What a package holds; `digest` (sha256 of the canonical JSON) names the package everywhere downstream."""

    data: dict[str, Any]

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def files(self) -> dict[str, str]:
        return dict(self.data["files"])

    def write(self, package_dir: Path) -> Path:
        path = package_dir / MANIFEST
        path.write_text(json.dumps(mask_json(self.data), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        os.chmod(path, 0o644)
        return path

    @classmethod
    def read(cls, package_dir: Path) -> PackageManifest:
        path = package_dir / MANIFEST
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise CheckFailed(f"{path} is missing: {package_dir} is not a conveyor package") from None
        except ValueError as exc:
            raise CheckFailed(f"{path} is not valid JSON ({exc})") from None


def check_package(package_dir: Path, expected_digest: str | None = None) -> PackageManifest:
    """Recompute every file hash and the digest; CheckFailed names each difference."""
    manifest = PackageManifest.read(package_dir)
    recorded = manifest.files
    actual = hash_files(package_dir)
    problems = []
    for name in sorted(set(recorded) | set(actual)):
        if name not in actual:
            problems.append(f"missing file {name}")
        elif name not in recorded:
            problems.append(f"file {name} is not in the manifest")
        elif recorded[name] != actual[name]:
            problems.append(f"{name} changed: manifest says {recorded[name]}, file is {actual[name]}")
    if expected_digest and manifest.digest != expected_digest:
        problems.append(f"manifest digest is {manifest.digest}, the build recorded {expected_digest}")
    if problems:
        raise CheckFailed(
            f"package {package_dir} does not match its manifest:\n  " + "\n  ".join(problems),
            hint="Rebuild with `conveyor build`; never edit a built package.",
        )
    return manifest
