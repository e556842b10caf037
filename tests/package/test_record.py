"""One BuildRecord for every room: found by path, folder, digest, prefix or as the latest; one error for a
corrupt build.json (a failed check, exit 1) wherever it is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.package.record import (
    BuildRecord,
    CorruptBuildRecord,
    ImageSection,
    find_build,
    find_build_by_image,
    short_digest,
    update_index,
)


def _write(state: Path, hex_digest: str, **changes: object) -> Path:
    folder = state / "builds" / hex_digest
    folder.mkdir(parents=True)
    data: dict[str, object] = {
        "schema": 1,
        "project": "census",
        "env": "dev",
        "package": {"digest": f"sha256:{hex_digest}", "dir": str(folder / "package"), "archive": str(folder / "p.tar")},
        "model": {"name": "worst_regression", "version": "3", "run_id": "r1", "tags": {"state": "dev"}},
        "image": {
            "engine": "podman",
            "reference": f"localhost/census:{hex_digest[:12]}",
            "id": "sha256:" + "c" * 64,
            "digest": "sha256:" + "d" * 64,
            "archive": str(folder / "image.oci.tar"),
        },
        "tests": {"ok": True},
        "gates": None,
    }
    data.update(changes)
    (folder / "build.json").write_text(json.dumps(data))
    return folder / "build.json"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "project" / ".conveyor"
    _write(state, "a1" * 32)
    _write(state, "a2" * 32, env="stage")
    _write(state, "b3" * 32, image=None, model=None)
    update_index(state, None, "stage", "a2" * 32)
    update_index(state, None, "dev", "a1" * 32)
    return state


def test_typed_sections(state):
    record = find_build(state, "a1a1")
    assert record.digest == "sha256:" + "a1" * 32 and record.short == "a1" * 6 == short_digest(record.digest)
    assert record.project == "census" and record.env == "dev"
    assert record.model is not None and record.model.version == "3" and record.model.tags == {"state": "dev"}
    assert record.model_ref() == "worst_regression/3"
    assert isinstance(record.image, ImageSection) and record.image.archive.name == "image.oci.tar"
    assert record.project_root == state.parent.resolve()
    bare = find_build(state, "b3b3")  # a build without model or image
    assert bare.model is None and bare.image is None and bare.model_ref() == "-"


def test_found_by_path_folder_digest_prefix_and_latest(state):
    folder = state / "builds" / ("a2" * 32)
    assert find_build(state, folder).digest.endswith("a2" * 32)
    assert find_build(state, str(folder / "build.json")).digest.endswith("a2" * 32)
    assert find_build(state, "sha256:" + "a2" * 32).env == "stage"
    assert find_build(state, "A2A2A2").env == "stage"  # a prefix, any case
    assert find_build(state).env == "dev"  # the last built
    assert find_build(state, None, env="stage").env == "stage"  # the latest of an environment
    assert find_build_by_image(state, "localhost/census:" + "a1" * 6) is not None
    assert find_build_by_image(state, "localhost/census:nothing") is None


def test_not_found_and_ambiguous_are_usage_errors(state, tmp_path):
    cases = (("ffff", "no build with digest 'ffff'"), ("not-a-digest", "neither a build"), ("a1a", "neither"))
    for spec, expected in cases:
        with pytest.raises(NotFoundError, match=expected) as caught:
            find_build(state, spec)
        assert caught.value.exit_code == 2
    _write(state, "a1a1a1a1" + "0" * 56)
    with pytest.raises(ConveyorError, match="matches 2 builds") as ambiguous:
        find_build(state, "a1a1a1")
    assert ambiguous.value.exit_code == 2
    with pytest.raises(NotFoundError, match="no build"):
        find_build(tmp_path / "empty" / ".conveyor")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "not a JSON object"),
        (json.dumps({"package": {"digest": "sha256:short", "dir": "x", "archive": "y"}}), "is not sha256:HEX"),
        (json.dumps({"model": None}), "no package section"),
        (None, "image.digest"),
    ],
)
def test_corrupt_build_json_is_one_error_with_exit_1(state, change, expected):
    path = state / "builds" / ("a1" * 32) / "build.json"
    if change is None:
        data = json.loads(path.read_text())
        data["image"]["digest"] = "latest"
        path.write_text(json.dumps(data))
    else:
        path.write_text(change)
    with pytest.raises(CorruptBuildRecord, match=expected) as caught:
        BuildRecord.load(path)
    assert caught.value.exit_code == 1
    with pytest.raises(CorruptBuildRecord):
        find_build(state, "a1a1")


def test_corrupt_build_json_exits_1_under_test_and_release_create(tmp_path, capsys):
    """Both doors read the same record and fail the same way (they exited 2 and 1 when each had its own)."""
    from conveyor.cli.main import main

    root = tmp_path / "census"
    root.mkdir()
    (root / "conveyor.toml").write_text(
        '[project]\nname = "census"\n\n[environments.dev]\nsecrets = "env://"\n'
        f'lake = "file://{tmp_path}/lake"\n\n[release.qa]\ntarget = "local://8799"\n'
    )
    path = _write(root / ".conveyor", "e5" * 32)
    path.write_text("{ not json")
    assert main(["test", str(path), "--project", str(root)]) == 1
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["release", "create", str(path), "--to", "qa", "--project", str(root), "--as", "carol"]) == 1
    assert "is not valid JSON" in capsys.readouterr().err
