"""conveyor test: the project's tests against the built package, in its image or in a venv from its lock."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.package import build
from conveyor.testing import run_tests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_build(census):
    project = load_project(census)
    return build(project, project.environment("dev"), model_spec="worst_regression/1", engine="none")


def _properties(junit) -> dict[str, str]:
    root = ET.parse(junit).getroot()
    return {p.get("name"): p.get("value") for p in root.iter("property")}


@pytest.mark.container
def test_tests_run_in_the_built_image(image_build, tmp_path):
    report = run_tests(image_build, where="image", results_dir=tmp_path / "results")
    assert report.ok and report.passed >= 6 and report.failed == 0
    assert report.ran_in == f"image {image_build.image.digest}"
    assert _properties(report.junit)["conveyor.ran_in"] == report.ran_in
    coverage = ET.parse(report.coverage_xml).getroot()
    assert coverage.find("sources/source").text == str(image_build.project_root)
    files = {c.get("filename") for c in coverage.iter("class")}
    assert "inference/model.py" in files and "score.py" in files
    assert report.coverage_percent and report.coverage_percent > 50
    assert (tmp_path / "results" / "htmlcov" / "index.html").is_file()
    recorded = json.loads(image_build.path.read_text())["tests"]
    assert recorded["ok"] and recorded["ran_in"] == report.ran_in


def test_tests_run_in_a_venv_from_the_lock(package_build, tmp_path):
    before = {p: p.read_bytes() for p in package_build.package_dir.rglob("*") if p.is_file()}
    report = run_tests(package_build, results_dir=tmp_path / "results")
    assert report.where == "venv" and report.ok and report.failed == 0
    lock_digest = report.ran_in.removeprefix("venv ")
    assert lock_digest.startswith("sha256:")
    assert _properties(report.junit)["conveyor.package_digest"] == package_build.digest
    assert {p: p.read_bytes() for p in package_build.package_dir.rglob("*") if p.is_file()} == before


def test_a_failing_project_test_exits_1_and_still_writes_reports(census, package_build, tmp_path, capsys):
    failing = census / "tests" / "test_zz_failing.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    try:
        results = tmp_path / "results"
        code = main(
            [
                "test",
                package_build.short,
                "--env",
                "dev",
                "--project",
                str(census),
                "--where",
                "venv",
                "--results",
                str(results),
            ]
        )
    finally:
        failing.unlink()
    assert code == 1
    assert "tests failed" in capsys.readouterr().err
    root = ET.parse(results / "junit.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert int(suite.get("failures")) == 1
    assert (results / "coverage.xml").is_file()
    assert json.loads(package_build.path.read_text())["tests"]["failed"] == 1


def test_where_image_without_an_image_is_refused(package_build, capsys):
    from conveyor.errors import ConveyorError

    with pytest.raises(ConveyorError, match="no image"):
        run_tests(package_build, where="image")


@pytest.mark.container
def test_image_missing_from_storage_is_loaded_from_the_saved_archive(image_build, tmp_path):
    from conveyor.package.engine import find_engine

    podman = find_engine("podman")
    podman.remove_image(image_build.image.reference)
    assert podman.image_id(image_build.image.reference) is None
    report = run_tests(image_build, where="image", results_dir=tmp_path / "results")
    assert report.ok and report.ran_in == f"image {image_build.image.digest}"
    assert podman.image_id(image_build.image.reference) == image_build.image.id


def test_venv_tests_get_a_minimal_environment_and_reports_are_masked(census, package_build, tmp_path, monkeypatch):
    lake_url = load_project(census).environment("dev").lake_url
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-credential-marker-8812")
    monkeypatch.setenv("CONVEYOR_SECRETS_STAGE", "env://CONVEYOR_STAGE_")
    probe = census / "tests" / "test_zz_probe.py"
    probe.write_text(
        "import os\n"
        "def test_environment_is_minimal():\n"
        "    assert sorted(k for k in os.environ if 'SECRET' in k or k.startswith('AWS_')) == []\n"
        "    assert 'host-credential-marker' not in repr(dict(os.environ))\n"
        "def test_quotes_a_secret():\n"
        f"    assert 'dev lake' == {lake_url!r}\n"
    )
    try:
        report = run_tests(package_build, where="venv", results_dir=tmp_path / "results")
    finally:
        probe.unlink()
    cases = {c.get("name"): c for c in ET.parse(report.junit).getroot().iter("testcase")}
    assert cases["test_environment_is_minimal"].find("failure") is None
    assert cases["test_quotes_a_secret"].find("failure") is not None
    for written in (tmp_path / "results").rglob("*"):
        if written.is_file():
            assert lake_url not in written.read_text(errors="replace"), written
