"""`run_tests`: the project's tests against the built package, in its image or in a fresh venv made from its lock.

Never against the source tree: the package's score.py, inference code and model come first on sys.path
(CONVEYOR_PACKAGE_DIR, CONVEYOR_MODEL_DIR), and coverage is measured on the packaged code, then mapped back to the
project's paths so CI can annotate the source.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.package.attestations import AttestationKind, attesting_identity, write_attestation
from conveyor.secrets.scrubbing import minimal_environment
from conveyor.testing.reports import (
    add_junit_properties,
    junit_counts,
    junit_outcomes,
    map_coverage_paths,
    mask_secrets_in_reports,
)
from conveyor.testing.statements import tests_statement

if TYPE_CHECKING:
    from conveyor.package.engine import ContainerEngine
    from conveyor.package.record import BuildRecord
    from conveyor.trust import SigningKey

Progress = Callable[[str], None]
WHERE = ("image", "venv")
COVERAGERC = """\
[run]
relative_files = True
data_file = {data_file}
source = .
omit =
    model/*
    tests/*
[report]
show_missing = True
"""


@dataclass
class TestReport:
    """The outcome of one test run against a build."""

    ok: bool
    passed: int
    failed: int
    errors: int
    skipped: int
    ran_in: str
    junit: str
    coverage_xml: str | None
    coverage_percent: float | None
    htmlcov: str | None
    where: str
    exit_code: int
    output: str = ""
    signed_by: str | None = None
    attestation: str | None = None

    __test__ = False  # not a pytest test class

    def to_record(self) -> dict[str, object]:
        """The `tests` section of build.json."""
        data = asdict(self)
        return {
            key: data[key]
            for key in (
                "ok",
                "passed",
                "failed",
                "errors",
                "skipped",
                "ran_in",
                "junit",
                "coverage_xml",
                "coverage_percent",
            )
        }


def _project_tests(record: BuildRecord) -> tuple[Any, Path]:
    from conveyor.config import load_project

    project = load_project(record.project_root)
    tests = project.root / project.config.project.tests
    if not tests.is_dir():
        raise ConveyorError(
            f"the tests folder {tests} does not exist",
            hint="Set [project] tests in conveyor.toml to the folder holding the project's pytest tests.",
        )
    return project, tests


def _source_mapping(project: Any, package_dir: Path) -> dict[str, str]:
    """Top-level packaged names → project paths (score.py and each configured code folder)."""
    mapping = {Path(project.config.project.score).name: project.config.project.score}
    for code in project.config.project.code:
        mapping[Path(code).name] = code
    return {name: path for name, path in mapping.items() if (package_dir / name).exists()}


def _choose_where(record: BuildRecord, where: str | None, say: Progress) -> tuple[str, ContainerEngine | None]:
    from conveyor.package.engine import EngineError, find_engine

    if where not in (None, *WHERE):
        raise ConveyorError(f"--where {where!r} is not understood", hint="Choose image or venv.")
    if where == "venv":
        return "venv", None
    if not record.image:
        if where == "image":
            raise ConveyorError(
                "this build has no image (it was built without a container engine)",
                hint="Rebuild with a container engine, or test with --where venv.",
            )
        say("the build has no image: testing in a virtual environment made from the lock")
        return "venv", None
    try:
        engine = find_engine(record.image.engine)
        if not engine.can_run:
            engine = find_engine(None)
        if not engine.can_run:
            raise EngineError(f"{engine.name} cannot run containers")
        return "image", engine
    except EngineError as error:
        if where == "image":
            raise
        say(f"{error.message}: testing in a virtual environment made from the lock instead")
        return "venv", None


def run_tests(
    build_record: BuildRecord,
    where: str | None = None,
    results_dir: Path | None = None,
    progress: Progress | None = None,
    key: Path | SigningKey | None = None,
) -> TestReport:
    """Run the project's tests against the build; writes junit.xml, coverage.xml and htmlcov/ into `results_dir`
    (default PROJECT/results), the `tests` summary of build.json, and the signed test-result attestation (by
    `key`'s principal; unsigned, said plainly, without a usable key). A failing test gives `ok=False`."""
    say = progress or (lambda _message: None)
    project, tests = _project_tests(build_record)
    identity = attesting_identity(project, key, say)
    results = Path(results_dir) if results_dir else project.root / "results"
    results.mkdir(parents=True, exist_ok=True)
    for stale in ("junit.xml", "coverage.xml"):
        (results / stale).unlink(missing_ok=True)
    shutil.rmtree(results / "htmlcov", ignore_errors=True)
    chosen, engine = _choose_where(build_record, where, say)
    with tempfile.TemporaryDirectory(prefix="conveyor-test-") as tmp:
        work = Path(tmp)
        shutil.copytree(tests, work / "tests", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        if chosen == "image":
            ran_in, exit_code, output = _in_image(build_record, engine, work, results, say)
        else:
            ran_in, exit_code, output = _in_venv(build_record, work, results, say)
    mask_secrets_in_reports(project, build_record.data.get("env"), results)
    junit = results / "junit.xml"
    if not junit.is_file():
        raise CheckFailed(
            f"the tests did not run (pytest exit status {exit_code}); no junit.xml was written:\n{output[-3000:]}"
        )
    add_junit_properties(
        junit,
        {
            "conveyor.ran_in": ran_in,
            "conveyor.package_digest": build_record.digest,
            "conveyor.model": build_record.model_ref(),
        },
    )
    counts = junit_counts(junit)
    coverage_xml = results / "coverage.xml"
    percent = None
    if coverage_xml.is_file():
        percent = map_coverage_paths(coverage_xml, project.root, _source_mapping(project, build_record.package_dir))
    report = TestReport(
        ok=exit_code == 0 and counts.failures == 0 and counts.errors == 0,
        passed=counts.passed,
        failed=counts.failures,
        errors=counts.errors,
        skipped=counts.skipped,
        ran_in=ran_in,
        junit=str(junit),
        coverage_xml=str(coverage_xml) if coverage_xml.is_file() else None,
        coverage_percent=percent,
        htmlcov=str(results / "htmlcov") if (results / "htmlcov").is_dir() else None,
        where=chosen,
        exit_code=exit_code,
        output=output,
    )
    build_record.update("tests", report.to_record())
    outcomes = junit_outcomes(junit)
    ran_on = (
        ("image", build_record.image.digest)
        if chosen == "image" and build_record.image
        else ("requirements.lock", ran_in.removeprefix("venv "))
    )
    statement = tests_statement(build_record, report.ok, outcomes, tests, ran_on)
    written = write_attestation(build_record, AttestationKind.TESTS, statement, identity)
    report.signed_by = identity.principal if written and identity else None
    report.attestation = str(written) if written else None
    return report


def _pytest_args(tests: str, results: str, coveragerc: str) -> list[str]:
    return [
        "-m",
        "pytest",
        tests,
        "-q",
        "-rfE",
        "-p",
        "no:cacheprovider",
        f"--junitxml={results}/junit.xml",
        "-o",
        "junit_family=xunit2",
        "--cov",
        f"--cov-config={coveragerc}",
        f"--cov-report=xml:{results}/coverage.xml",
        f"--cov-report=html:{results}/htmlcov",
        "--cov-report=term",
    ]


def _in_image(record: BuildRecord, engine: Any, work: Path, results: Path, say: Progress) -> tuple[str, int, str]:
    from conveyor.package.image import APP_DIR
    from conveyor.package.lock import test_tools_dir
    from conveyor.testing.containers import ensure_image

    image = record.image
    assert image is not None  # noqa: S101 -- narrows for mypy: in-image tests run only for a build with an image
    reference, recorded = ensure_image(record, engine, say), image.digest
    tools = test_tools_dir()
    (work / "coveragerc").write_text(COVERAGERC.format(data_file="/tmp/conveyor.coverage"))  # noqa: S108 -- a path inside the test container, not on the host
    say(f"running {record.project} tests in {reference} ({recorded[:19]}), network off")
    result = engine.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        "--workdir",
        APP_DIR,
        "-v",
        f"{work}:/conveyor-test:ro",
        "-v",
        f"{tools}:/opt/conveyor-test-tools:ro",
        "-v",
        f"{results}:/results",
        "-e",
        f"CONVEYOR_PACKAGE_DIR={APP_DIR}",
        "-e",
        f"CONVEYOR_MODEL_DIR={APP_DIR}/model",
        "-e",
        "PYTHONPATH=/opt/conveyor-test-tools",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        reference,
        *_pytest_args("/conveyor-test/tests", "/results", "/conveyor-test/coveragerc"),
        check=False,
    )
    return f"image {recorded}", result.returncode, result.stdout + result.stderr


def _in_venv(record: BuildRecord, work: Path, results: Path, say: Progress) -> tuple[str, int, str]:
    from conveyor.package.lock import (
        PYTHON_VERSION,
        RequirementsLock,
        download_wheels,
        run_tool,
        test_tool_pins,
        uv_binary,
    )

    lock_file = record.package_dir / "requirements.lock"
    lock = RequirementsLock(lock_file.read_text())
    wheels = download_wheels(lock)
    venv = work / "venv"
    say(f"making a virtual environment from the lock ({lock.digest[:19]})")
    uv = uv_binary()
    run_tool([uv, "venv", "--quiet", "--python", PYTHON_VERSION, str(venv)], "creating the test virtual environment")
    python = str(venv / "bin" / "python")
    run_tool(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--no-index",
            "--find-links",
            str(wheels),
            "--require-hashes",
            "-r",
            str(lock_file),
        ],
        "installing the lock",
    )
    run_tool([uv, "pip", "install", "--quiet", "--python", python, *test_tool_pins()], "installing pytest")
    package = work / "package"
    shutil.copytree(record.package_dir, package)
    (work / "coveragerc").write_text(COVERAGERC.format(data_file=work / ".coverage"))
    (work / "home").mkdir()
    env = minimal_environment(
        {
            "CONVEYOR_PACKAGE_DIR": str(package),
            "CONVEYOR_MODEL_DIR": str(package / "model"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(work / "home"),
            "TMPDIR": str(work),
        }
    )
    say(f"running {record.project} tests in the virtual environment")
    result = subprocess.run(
        [python, *_pytest_args(str(work / "tests"), str(results), str(work / "coveragerc"))],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return f"venv {lock.digest}", result.returncode, result.stdout + result.stderr
