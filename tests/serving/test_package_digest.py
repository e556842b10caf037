"""The digest the server reports in /health/ready is the package digest the ledger names."""

from __future__ import annotations

from pathlib import Path

from conveyor.package.manifest import PackageManifest, hash_files
from conveyor.serving.loader import read_package_info


def test_the_served_digest_is_the_manifests_digest(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def run(raw):\n    return raw\n")
    model = {"name": "census-é", "version": "3", "tags": {"note": "ünïcode", "token": "sk-live-0123456789abcdef"}}
    manifest = PackageManifest({"schema": 1, "model": model, "files": hash_files(tmp_path)})
    manifest.write(tmp_path)
    info = read_package_info(tmp_path)
    assert info.digest == manifest.digest
    assert info.version == "3"


def test_a_folder_without_a_manifest_names_no_package(tmp_path: Path) -> None:
    (tmp_path / "score.py").write_text("def run(raw):\n    return raw\n")
    assert read_package_info(tmp_path).digest is None
