"""conveyor verify: every digest recomputed; one changed byte anywhere fails with exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.package import build, verify_build

pytestmark = pytest.mark.slow


def _copy_build(record, dest: Path, with_image: bool = False) -> Path:
    """A copy of a build folder whose build.json points at the copy (so tampering leaves the original alone);
    its attestations stay behind (tests/package/test_attestations.py checks those)."""
    ignored = ("attestations",) if with_image else ("attestations", "image.oci.tar")
    shutil.copytree(record.dir, dest, ignore=shutil.ignore_patterns(*ignored))
    data = json.loads((dest / "build.json").read_text())
    data["package"]["dir"] = str(dest / "package")
    data["package"]["archive"] = str(dest / "package.tar")
    if data.get("image"):
        if with_image:
            data["image"]["archive"] = str(dest / "image.oci.tar")
        else:
            data["image"] = None
    (dest / "build.json").write_text(json.dumps(data))
    return dest / "build.json"


def _flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def package_build(census):
    project = load_project(census)
    return build(project, project.environment("dev"), engine="none")


def test_intact_build_verifies(package_build, capsys):
    assert verify_build(package_build.path).checked
    assert main(["verify", str(package_build.path)]) == 0
    assert "verified" in capsys.readouterr().out


@pytest.mark.parametrize("victim", ["package/model/model.pkl", "package/inference/model.py", "package.tar"])
def test_one_changed_byte_fails(package_build, tmp_path, capsys, victim):
    copy = _copy_build(package_build, tmp_path / package_build.dir.name)
    _flip_byte(copy.parent / victim, offset=len((copy.parent / victim).read_bytes()) // 2)
    with pytest.raises(CheckFailed):
        verify_build(copy)
    assert main(["verify", str(copy)]) == 1
    assert "does not match" in capsys.readouterr().err


def test_edited_manifest_no_longer_matches_the_digest(package_build, tmp_path):
    copy = _copy_build(package_build, tmp_path / package_build.dir.name)
    manifest = copy.parent / "package" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["model"]["version"] = "999"
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckFailed, match="manifest digest"):
        verify_build(copy)


@pytest.mark.container
def test_changed_byte_in_the_image_archive_fails(image_build, tmp_path, capsys):
    copy = _copy_build(image_build, tmp_path / image_build.dir.name, with_image=True)
    assert main(["verify", str(copy)]) == 0
    _flip_byte(copy.parent / "image.oci.tar", offset=4096)
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 1
    assert "image.oci.tar" in capsys.readouterr().err


@pytest.mark.container
def test_verify_by_image_reference_checks_the_engines_copy(image_build, census, capsys):
    assert main(["verify", image_build.image.reference, "--project", str(census)]) == 0
    assert "has the recorded id" in capsys.readouterr().out
