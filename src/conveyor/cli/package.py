"""`conveyor build`, `verify`, `test`, `gate` and `base-image build`: the artifact that ships, and its checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.options import EnvOption, JsonOption, KeyOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, say, stdout
from conveyor.errors import CheckFailed

if TYPE_CHECKING:
    from conveyor.package import BuildRecord

EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        envvar="CONVEYOR_ENGINE",
        help="Container engine: podman, docker, buildah, or none for the package only (default: the first that "
        "works; package only, with a message, when none does).",
        show_default=False,
    ),
]
BuildArgument = Annotated[
    str | None,
    typer.Argument(
        help="Build: digest or prefix, build folder or build.json (default: the last build of --env, else the last).",
        show_default=False,
    ),
]


def _load_build(project: Path | None, env: str | None, build_ref: str | None) -> BuildRecord:
    from conveyor.config import load_project
    from conveyor.package import find_build

    loaded = load_project(project)
    return find_build(loaded.state_dir, build_ref, env)


def build(
    env: EnvOption = None,
    project: ProjectOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME/VERSION or NAME@ALIAS (default: the newest version in the environment's registry).",
            show_default=False,
        ),
    ] = None,
    engine: EngineOption = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            envvar="CONVEYOR_BASE_IMAGE",
            help="Base image (default python:3.11-slim; where it cannot be pulled, one made from Debian packages).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build the deployable package and OCI image of a registered model version.

    What ships is what was registered: score.py and the inference code come from the registry's copy of the
    model (the `code/` folder of the MLflow model), never from the work tree. The package holds them, the model
    files (model/), requirements.lock (pinned with hashes: the model's requirements as MLflow recorded them, less
    MLflow itself, plus the scoring server's) and manifest.json (sha256 of every file, the model's name, version,
    run id and tags, conveyor and Python versions, base image) and, when the lake files the training read are
    still as they were, profile.json (the training data's distribution per feature, for drift). The package digest
    is the sha256 of the canonical manifest; the same inputs give the same digest and a byte-identical package.tar.

    With a container engine the image is built offline (wheels downloaded on the host, checked against the
    lock's hashes), labelled with org.opencontainers.image.* and the package digest, and saved once as
    image.oci.tar, whose manifest digest is the image digest. The image runs the conveyor scoring server on port
    8080. Everything lands in .conveyor/builds/DIGEST/ with build.json; when nothing changed the previous build
    is reused.

    The build's SLSA provenance (source commit, data digest, model version and run, lock, base image), an in-toto
    Statement about the package and image digests, is signed with --key and stored in attestations/. Without a
    usable key the build is made but unsigned, and cannot be released.

    Example: conveyor build --env stage --model worst_regression/3 --key ~/.ssh/conveyor
    """
    from conveyor.drift import read_profile
    from conveyor.package import build as build_package

    loaded, environment = project_and_env(project, env)
    record = build_package(
        loaded, environment, model_spec=model, engine=engine, base_image=base_image, progress=say, key=key
    )
    profile = read_profile(record.package_dir)
    profiled: dict[str, Any] | None = {"features": sorted(profile.features), "rows": profile.rows} if profile else None
    if as_json:
        emit_json(
            {
                **record.data,
                "path": str(record.path),
                "reused": record.reused,
                "signed_by": record.signed_by,
                "profile": profiled,
            }
        )
        return
    image = record.image
    stdout.print(f"build    {record.digest}")
    stdout.print(f"model    {record.model_ref()}")
    stdout.print(f"package  {record.package_dir}")
    if profiled:
        stdout.print(f"profile  {', '.join(profiled['features'])} ({profiled['rows']:,} training rows)")
    else:
        stdout.print("profile  none: the training data could not be profiled; drift is unavailable")
    stdout.print(f"archive  {record.archive}")
    if image:
        stdout.print(f"image    {image.reference}  {image.digest}")
        stdout.print(f"         {image.archive}")
    else:
        stdout.print("image    none (no container engine)")
    stdout.print(f"record   {record.path}")
    stdout.print(_signed(record.signed_by, "provenance"))
    stdout.print("next: conveyor test" + (f" --env {environment.name}" if env else ""))


def _signed(principal: str | None, what: str) -> str:
    if principal:
        return f"signed   {what} by [bold]{principal}[/]"
    return "signed   [bold yellow]no: UNSIGNED[/], this build cannot be released (sign with --key)"


def verify(
    target: Annotated[
        str | None,
        typer.Argument(
            help="A build (digest, folder or build.json), a package folder, an image.oci.tar, or an image "
            "reference or digest of a build (default: the last build).",
            show_default=False,
        ),
    ] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every digest and fail (exit 1) on any changed byte or any attestation that does not hold.

    For a build: package files vs manifest.json, manifest vs the recorded package digest, package.tar vs the
    package, every blob of image.oci.tar vs its name and the recorded image digest, and every signed attestation
    in attestations/ (provenance, tests, gates): its signature against the project's allowed_signers and its
    subjects against the package and image actually there. A build without attestations verifies, and is said
    to be unsigned (it cannot be released).
    """
    from conveyor.config import load_project
    from conveyor.package import verify as verify_target

    loaded = load_project(project) if project is not None or not (target and Path(target).exists()) else None
    result = verify_target(target, loaded, env)
    if as_json:
        emit_json(
            {
                "ok": True,
                "target": str(result.target),
                "checked": result.checked,
                "notes": result.notes,
                "signed": result.signed,
                "attestations": [
                    {"kind": a.kind.value, "digest": a.digest, "signer": a.signer, "result": a.result}
                    for a in result.attestations
                ],
            }
        )
        return
    for line in result.checked:
        stdout.print(f"[green]ok[/] {line}")
    for line in result.notes:
        stdout.print(f"[yellow]note[/] {line}")
    stdout.print(f"[bold green]verified[/] {result.target}")


def test(
    build_ref: BuildArgument = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="image (in the built image, tests and pytest mounted, network off) or venv (a fresh "
            "virtual environment from the lock). Default: image when an engine works.",
            show_default=False,
        ),
    ] = None,
    results: Annotated[
        Path | None, typer.Option(help="Folder for junit.xml, coverage.xml, htmlcov/ (default PROJECT/results).")
    ] = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the project's tests against the built package, never the source tree.

    The tests see CONVEYOR_PACKAGE_DIR and CONVEYOR_MODEL_DIR pointing into the package; coverage is measured on
    the packaged code and mapped back to the project's paths. Writes results/junit.xml (with where the tests ran
    as a property), results/coverage.xml (Cobertura) and results/htmlcov/, a summary into build.json, and the
    in-toto test-result attestation (about the package, and the image when they ran in it) signed with --key.
    A failing test exits 1; the reports and the attestation (FAILED) are still written.
    """
    from conveyor.testing import run_tests

    record = _load_build(project, env, build_ref)
    report = run_tests(record, where=where, results_dir=results, progress=say, key=key)
    if as_json:
        emit_json(
            {
                **report.to_record(),
                "where": report.where,
                "htmlcov": report.htmlcov,
                "signed_by": report.signed_by,
                "attestation": report.attestation,
            }
        )
    else:
        if not report.ok:
            stdout.print(report.output[-6000:], markup=False, highlight=False)
        cover = f", coverage {report.coverage_percent}%" if report.coverage_percent is not None else ""
        colour = "green" if report.ok else "red"
        stdout.print(
            f"[{colour}]{report.passed} passed, {report.failed} failed[/], {report.errors} errors, "
            f"{report.skipped} skipped{cover} — ran in {report.ran_in}"
        )
        stdout.print(f"reports: {report.junit}, {report.coverage_xml}, {report.htmlcov}")
        stdout.print(_signed(report.signed_by, "test result"))
    if not report.ok:
        raise CheckFailed(f"tests failed against build {record.short}", hint=f"See {report.junit}.")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def gate(
    build_ref: BuildArgument = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the quality gates of a build on the sealed evaluation set.

    The project's evaluate.py `evaluate(model, data)` runs inside the build's image (network off, empty
    environment, only the sealed file mounted read-only at `data`) on the packaged model and on the champion
    (alias prod in the prod environment's registry). The set's URL is [gates] eval_data, resolved through the
    gate step's own store ([gates] secrets; CONVEYOR_SECRETS_GATES in CI), never an environment's lake. Only the
    ruled metrics come out; the evaluator's output stays in a private log under .conveyor/gates/. Rules are
    [gates] metrics, e.g. r2 = ">= 0.0" and mae = "<= 1.1 * champion" (passes with "no champion" while nothing
    is in production). The rules, eval_data and secrets are release policy: they must be the ones the release
    ledger holds in force (exit 1 naming the difference otherwise; change them with `conveyor release policy
    propose`). Exit 1 when a gate fails. A summary goes into build.json, and the gate attestation
    (metrics, rules and thresholds, champion and result, about the package and image) is signed with --key.
    """

    from conveyor.config import load_project
    from conveyor.release import gate_policy_in_force
    from conveyor.testing import run_gates

    record = _load_build(project, env, build_ref)
    in_force = gate_policy_in_force(load_project(record.project_root))
    report = run_gates(record, progress=say, key=key, policy=in_force)
    if as_json:
        emit_json(report.to_dict())
    else:
        columns = ["metric", "value", "rule", "threshold", "champion", "result"]
        table = listing(f"gates for build {record.short} (champion: {report.champion or 'none'})", columns)
        for r in report.results:
            verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
            table.add_row(
                r.metric,
                _fmt(r.value),
                r.rule,
                _fmt(r.threshold),
                _fmt(r.champion) if r.champion is not None else (r.note or "-"),
                verdict,
            )
        stdout.print(table)
        if not report.results:
            stdout.print("no gates configured ([gates] metrics in conveyor.toml)")
        stdout.print(_signed(report.signed_by, "gate result"))
    if not report.ok:
        failed = ", ".join(r.metric for r in report.results if not r.passed)
        raise CheckFailed(f"quality gates failed for build {record.short}: {failed}")


base_image_app = typer.Typer(
    help="Base images for `conveyor build`, for machines that cannot pull python:3.11-slim.", no_args_is_help=True
)


@base_image_app.command("build")
def base_image_build(
    engine: EngineOption = None,
    suite: Annotated[str, typer.Option(help="Debian suite (bookworm's python3 is 3.11).")] = "bookworm",
    force: Annotated[bool, typer.Option(help="Make it again even when cached.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a Python base image from Debian packages with mmdebstrap (python3, python3-venv, ca-certificates).

    The root filesystem is cached in ~/.cache/conveyor (or $CONVEYOR_CACHE_DIR) keyed by its inputs and imported
    into the engine as localhost/conveyor-python:SUITE-KEY. `conveyor build` uses it by itself when the default
    base image cannot be pulled; pass the printed reference with --base-image to choose it explicitly.
    """
    from conveyor.package import build_debian_base, find_engine

    chosen = find_engine(engine)
    reference = build_debian_base(chosen, suite=suite, force=force, progress=say)
    if as_json:
        emit_json({"reference": reference, "engine": chosen.name})
    else:
        stdout.print(reference)


COMMANDS = {"build": build, "verify": verify, "test": test, "gate": gate}
GROUPS = {"base-image": base_image_app}
