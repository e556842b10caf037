"""conveyor build: package layout, determinism, warm reuse, image labels and digests, and refusals of bad input."""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.package import PackageManifest, build
from conveyor.package.image import read_oci_archive
from conveyor.package.record import BuildRecord

pytestmark = pytest.mark.slow


def test_package_holds_registered_code_model_lock_and_manifest(census, tmp_path):
    project = load_project(census)
    record = build(project, project.environment("dev"), engine="none")
    package = record.package_dir
    assert sorted(p.name for p in package.iterdir()) == [
        "inference",
        "manifest.json",
        "model",
        "profile.json",
        "requirements.lock",
        "score.py",
    ]
    assert {"model.pkl", "x_scaler.pkl", "y_scaler.pkl"} <= {p.name for p in (package / "model").iterdir()}
    manifest = PackageManifest.read(package)
    assert manifest.digest == record.digest
    assert record.dir.name == record.digest.removeprefix("sha256:")
    assert manifest.data["model"]["name"] == record.data["model"]["name"] == "worst_regression"
    assert manifest.data["model"]["tags"]["state"] == "dev"
    assert manifest.data["python"] == "3.11" and manifest.data["conveyor"]
    assert set(manifest.files) == {
        "score.py",
        "inference/__init__.py",
        "inference/model.py",
        "inference/transforms.py",
        "profile.json",
        "requirements.lock",
        *(f"model/{p.name}" for p in (package / "model").iterdir()),
    }
    lock = (package / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock and "scikit-learn==" in lock and "uvicorn==" in lock
    assert "mlflow" not in lock  # the package is served by conveyor, not MLflow
    # what ships is what was registered, not the work tree
    (census / "inference" / "model.py").write_text((census / "inference" / "model.py").read_text() + "\n# edited\n")
    try:
        again = build(project, project.environment("dev"), engine="none")
        assert again.digest == record.digest
        assert "# edited" not in (again.package_dir / "inference" / "model.py").read_text()
    finally:
        text = (census / "inference" / "model.py").read_text()
        (census / "inference" / "model.py").write_text(text.removesuffix("\n# edited\n"))
    record_data = json.loads(record.path.read_text())
    assert [key for key in record_data if key != "attested"] == [  # `attested`: written by a signed test or gate run
        "schema",
        "project",
        "env",
        "created_at",
        "created_by",
        "package",
        "model",
        "image",
        "tests",
        "gates",
    ]


def test_two_builds_give_the_same_digest_and_identical_archive(census):
    project = load_project(census)
    first = build(project, project.environment("dev"), engine="none", base_image="example/base:1")
    archive_bytes = first.archive.read_bytes()
    shutil.rmtree(first.dir)
    (project.state_dir / "builds" / "index.json").unlink()
    second = build(project, project.environment("dev"), engine="none", base_image="example/base:1")
    assert not second.reused
    assert second.digest == first.digest
    assert second.archive.read_bytes() == archive_bytes
    with tarfile.open(second.archive) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
    assert {m.mode for m in members if m.isfile()} == {0o644}


def test_unchanged_build_is_reused_in_under_two_seconds(census):
    project = load_project(census)
    build(project, project.environment("dev"), engine="none")
    started = time.monotonic()
    messages: list[str] = []
    again = build(project, project.environment("dev"), engine="none", progress=messages.append)
    assert time.monotonic() - started < 2.0
    assert again.reused
    assert any("nothing changed" in m for m in messages)


@pytest.mark.container
def test_image_is_labelled_saved_once_and_serves_the_digest(image_build):
    from conveyor.package.engine import find_engine

    image = image_build.image
    assert image.engine == "podman"
    archive = image.archive
    assert archive.name == "image.oci.tar"
    assert read_oci_archive(archive).digest == image.digest
    engine = find_engine("podman")
    assert engine.image_id(image.reference) == image.id
    labels = json.loads(engine.run("image", "inspect", "--format", "{{json .Labels}}", image.reference).stdout)
    assert labels["io.conveyor.package.digest"] == image_build.digest
    assert labels["io.conveyor.model.version"] == image_build.data["model"]["version"]
    assert labels["org.opencontainers.image.title"] == "census"
    assert labels["org.opencontainers.image.version"].startswith("worst_regression-")
    # the image scores with the packaged model and the locked runtime (no network inside)
    result = engine.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        image.reference,
        "-c",
        "import sys; sys.path.insert(0, '/app/package'); import score; score.init(); "
        "print(score.run({'age': 37, 'hours-per-week': 40})['estimated_wages'])",
    )
    assert float(result.stdout.strip()) > 0


@pytest.mark.container
def test_warm_build_with_image_reuses_everything(image_build, census):
    project = load_project(census)
    started = time.monotonic()
    again = build(project, project.environment("dev"), engine="podman")
    assert time.monotonic() - started < 2.0
    assert again.reused and again.image == image_build.image


def test_build_cli_bad_inputs(census, tmp_path, capsys):
    fresh = tmp_path / "fresh"
    assert (
        main(
            [
                "init",
                str(fresh),
                "--secrets-dir",
                str(tmp_path / "s"),
                "--lakes-dir",
                str(tmp_path / "l"),
                "--rows",
                "100",
                "--no-git",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["build", "--env", "dev", "--project", str(fresh), "--engine", "none"]) == 2
    assert "no model is registered in the dev registry" in capsys.readouterr().err
    assert (
        main(["build", "--env", "dev", "--project", str(census), "--engine", "none", "--model", "worst_regression/99"])
        == 2
    )
    assert "'worst_regression/99' is not in the dev registry" in capsys.readouterr().err
    assert main(["build", "--env", "dev", "--project", str(census), "--engine", "kubernetes"]) == 2
    assert "unknown container engine" in capsys.readouterr().err


def test_docker_without_daemon_is_a_clear_error(census, capsys):
    from conveyor.package.engine import _docker_answers

    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed (this test is about a client without a daemon)")
    if _docker_answers(docker)[0]:
        pytest.skip("a Docker daemon answers here")
    assert main(["build", "--env", "dev", "--project", str(census), "--engine", "docker"]) == 2
    err = capsys.readouterr().err
    assert "no Docker daemon answers" in err and "--engine podman" in err


def test_no_engine_builds_the_package_and_says_so(census, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["build", "--env", "dev", "--project", str(census)]) == 0
    captured = capsys.readouterr()
    assert "no working container engine found" in captured.err
    assert "image    none" in captured.out
    assert "profile  age, hours-per-week (300 training rows)" in captured.out
    record = BuildRecord.load(Path(captured.out.split("record   ")[1].split()[0]))
    assert record.image is None and record.archive.is_file()


def test_the_package_records_the_profile_of_the_data_training_read(census):
    """profile.json profiles the lake file the training read (checked against its data digest), restricted to the
    features the run logged; when that data changed or was never recorded, the package has no profile and why."""
    from dataclasses import replace

    from conveyor.drift import read_profile
    from conveyor.package.profiling import training_profile
    from conveyor.registry import ModelRegistry

    project = load_project(census)
    environment = project.environment("dev")
    record = build(project, environment, engine="none")
    profile = read_profile(record.package_dir)
    assert profile is not None and set(profile.features) == {"age", "hours-per-week"}
    info = ModelRegistry(environment).resolve("worst_regression/1")
    assert profile.source == {"files": ["AdultCensusIncome.csv"], "data_digest": info.tags["data_digest"]}
    assert profile.rows == 300 and profile.features["age"].kind == "numeric"
    changed = training_profile(environment, replace(info, tags={**info.tags, "data_digest": "sha256:" + "0" * 64}))
    assert changed.profile is None and "changed since worst_regression/1 was trained" in (changed.reason or "")
    unrecorded = {k: v for k, v in info.tags.items() if k != "data_files"}
    missing = training_profile(environment, replace(info, tags=unrecorded))
    assert missing.profile is None and "records no training data" in (missing.reason or "")
