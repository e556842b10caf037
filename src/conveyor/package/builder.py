"""`build()`: a registered model version → content-addressed package, reproducible archive, OCI image, build.json.

What ships is what was registered: score.py and the inference code come from the `code/` folder of the MLflow
model in the registry, not from the work tree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import conveyor
from conveyor.errors import ConveyorError
from conveyor.package.archive import write_archive
from conveyor.package.attestations import (
    AttestationKind,
    attest_provenance,
    attested_by,
    attesting_identity,
    drop_results,
)
from conveyor.package.distribution import conveyor_wheel, source_digest
from conveyor.package.lock import (
    PYTHON_VERSION,
    RequirementsLock,
    download_wheels,
    lock_requirements,
    pip_wheel,
)
from conveyor.package.manifest import PackageManifest, check_package, hash_files
from conveyor.package.record import (
    BUILD_FILE,
    INPUTS_FILE,
    SCHEMA,
    BuildRecord,
    ImageSection,
    builds_dir,
    update_index,
    write_json,
)
from conveyor.package.reuse import try_warm, warm_key
from conveyor.registry import copy_regular_file, copy_regular_tree

if TYPE_CHECKING:
    from conveyor.config import Environment, Project
    from conveyor.drift import TrainingProfile
    from conveyor.package.engine import ContainerEngine
    from conveyor.registry import ModelRegistry, ModelVersionInfo
    from conveyor.trust import Identity, SigningKey

Progress = Callable[[str], None]
NO_ENGINE = "none"
SKIPPED_CODE = ("conveyor_pyfunc.py", "__pycache__")


def _normalize_modes(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def assemble_package(
    model_dir: Path,
    dest: Path,
    info: ModelVersionInfo,
    project: Project,
    base_image: str | None,
    lock_text: str,
    profile: TrainingProfile | None = None,
) -> PackageManifest:
    """Lay out the package (score.py + code from the registered model, model files, lock, the training data's
    profile.json when there is one) and its manifest."""
    dest.mkdir(parents=True)
    code = model_dir / "code"
    if not (code / Path(project.config.project.score).name).is_file():
        raise ConveyorError(
            f"model {info.ref} was registered without {project.config.project.score} in its code",
            hint="Register models through conveyor.context().register_model(), which stores score.py and the "
            "inference code with the model.",
        )
    for item in sorted(code.iterdir()):
        if item.name in SKIPPED_CODE:
            continue
        target = dest / item.name
        if item.is_dir() and not item.is_symlink():
            copy_regular_tree(item, target, f"model {info.ref}'s code", skip=("__pycache__", "*.pyc"))
        else:
            copy_regular_file(item, target, f"model {info.ref}'s code")
    copy_regular_tree(model_dir / "data" / "model", dest / "model", f"model {info.ref}")
    (dest / "requirements.lock").write_text(lock_text)
    if profile is not None:
        profile.write(dest)
    _normalize_modes(dest)
    manifest = PackageManifest(
        {
            "schema": SCHEMA,
            "project": project.name,
            "model": {"name": info.name, "version": info.version, "run_id": info.run_id, "tags": dict(info.tags)},
            "conveyor": conveyor.__version__,
            "python": PYTHON_VERSION,
            "base_image": base_image,
            "requirements": "requirements.lock",
            "files": hash_files(dest),
        }
    )
    manifest.write(dest)
    return manifest


def _labels(project: Project, info: ModelVersionInfo, digest: str, base: str) -> dict[str, str]:
    created = datetime.fromtimestamp(info.created_at / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": project.name,
        "org.opencontainers.image.description": f"{project.name}: model {info.name} version {info.version}, "
        "served by conveyor",
        "org.opencontainers.image.version": f"{info.name}-{info.version}",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.vendor": "conveyor",
        "io.conveyor.package.digest": digest,
        "io.conveyor.model.name": info.name,
        "io.conveyor.model.version": info.version,
        "io.conveyor.model.run_id": info.run_id or "",
        "io.conveyor.version": conveyor.__version__,
    }
    if info.tags.get("git_commit"):
        labels["org.opencontainers.image.revision"] = info.tags["git_commit"]
    return labels


def _resolve_engine(engine: str | ContainerEngine | None, say: Progress) -> ContainerEngine | None:
    from conveyor.package.engine import ContainerEngine, NoEngine, find_engine

    if isinstance(engine, ContainerEngine):
        return engine
    if engine == NO_ENGINE:
        return None
    try:
        return find_engine(engine)
    except NoEngine as error:
        if engine:
            raise
        say(
            f"{error.message}: building the package without an image; `conveyor test` will use a virtual "
            f"environment. {error.hint}"
        )
        return None


def _image_inputs(engine: ContainerEngine, base: str, lock_digest: str) -> dict[str, Any]:
    """What the image is made from besides the package; `base_id` catches a base image re-pulled or remade."""
    return {
        "engine": engine.name,
        "base": base,
        "base_id": engine.image_id(base),
        "lock": lock_digest,
        "conveyor": source_digest(),
    }


@dataclass(frozen=True)
class BuildInputs:
    """What a build is made from, once resolved: the model version (and its registry), the engine, the base."""

    registry: ModelRegistry
    info: ModelVersionInfo
    engine: ContainerEngine | None
    base: str


@dataclass(frozen=True)
class StagedPackage:
    """The package laid out in its build folder (named by its digest), with its manifest and lock."""

    folder: Path
    dir: Path
    manifest: PackageManifest
    lock: RequirementsLock

    @property
    def digest(self) -> str:
        return self.manifest.digest


def build(
    project: Project,
    environment: Environment,
    model_spec: str | None = None,
    engine: str | ContainerEngine | None = None,
    base_image: str | None = None,
    progress: Progress | None = None,
    key: Path | SigningKey | None = None,
) -> BuildRecord:
    """Build the package (and, with a container engine, the image) for a model version; reuse when unchanged.

    `engine` is podman, docker, buildah, "none" (package only) or None (the first that works; package only with a
    message when none does). `key` is the signing key (default $CONVEYOR_SIGNING_KEY, else git's
    user.signingkey); its principal signs the build's SLSA provenance. Without a usable key the build is made
    unsigned, and says so. Returns the BuildRecord (`.path` is build.json, `.data` the record, `.reused`,
    `.signed_by`).
    """
    say = progress or _quiet
    identity = attesting_identity(project, key, say)
    engine_name = engine if isinstance(engine, str) or engine is None else engine.name
    key_of_inputs = warm_key(environment, model_spec, engine_name, base_image)
    warm = _reuse_unchanged(project, environment, key_of_inputs, engine_name, say)
    if warm:
        return _attest_unchanged(project, warm, identity)
    started = time.monotonic()
    inputs = _resolve_inputs(environment, model_spec, engine, base_image, say)
    staged = _stage_package(project, environment, inputs, say)
    archive = write_archive(staged.dir, staged.folder / "package.tar")
    previous = BuildRecord.load(staged.folder) if (staged.folder / BUILD_FILE).is_file() else None
    image, reused_image = None, False
    if inputs.engine:
        image, reused_image = _build_or_reuse_image(project, inputs, staged, previous, say)
    same_image = previous is not None and (reused_image or (not inputs.engine and not previous.image))
    record = _write_record(project, environment, inputs, staged, archive, image, previous, same_image)
    if not same_image:
        drop_results(record)
    record.reused = reused_image
    record.signed_by = identity.principal if attest_provenance(record, identity) and identity else None
    _remember(project, environment, (key_of_inputs, model_spec, engine_name, base_image), staged.digest)
    say(f"build {record.short} ready in {time.monotonic() - started:.1f} s: {staged.folder}")
    return record


def _attest_unchanged(project: Project, record: BuildRecord, identity: Identity | None) -> BuildRecord:
    """A reused build is vouched for by whoever builds it now with a key (its provenance is signed again when
    another principal, or no one, signed it); without a key it keeps the provenance it has."""
    record.signed_by = attested_by(project, record, AttestationKind.PROVENANCE)
    if identity is not None and record.signed_by != identity.principal:
        attest_provenance(record, identity)
        record.signed_by = identity.principal
    return record


def _quiet(_message: str) -> None:
    return None


def _reuse_unchanged(
    project: Project, environment: Environment, key: str | None, engine_name: str | None, say: Progress
) -> BuildRecord | None:
    """The previous build when nothing it was made from changed (and it is intact); None otherwise."""
    warm = try_warm(project, key, want_image=engine_name != NO_ENGINE and bool(engine_name))
    if warm:
        say(f"nothing changed: reusing build {warm.short} (model {warm.model_ref()})")
        update_index(project.state_dir, key, environment.name, warm.digest.removeprefix("sha256:"))
    return warm


def _resolve_inputs(
    environment: Environment,
    model_spec: str | None,
    engine: str | ContainerEngine | None,
    base_image: str | None,
    say: Progress,
) -> BuildInputs:
    """The engine, the model version in the environment's registry, and the base image (made if need be)."""
    from conveyor.package.baseimage import ensure_base_image, requested_base_image
    from conveyor.registry import ModelRegistry

    chosen_engine = _resolve_engine(engine, say)
    registry = ModelRegistry(environment)
    info = registry.resolve(model_spec)
    say(f"model {info.name} version {info.version} from the {environment.name} registry")
    base = ensure_base_image(chosen_engine, base_image, say) if chosen_engine else requested_base_image(base_image)
    return BuildInputs(registry, info, chosen_engine, base)


def _stage_package(project: Project, environment: Environment, inputs: BuildInputs, say: Progress) -> StagedPackage:
    """Download the model, lock its requirements, profile its training data, lay the package out beside, then move
    it to its digest's folder (an intact package already there is kept)."""
    from conveyor.package.profiling import training_profile

    root = builds_dir(project.state_dir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=root) as tmp:
        model_dir = inputs.registry.download(inputs.info, Path(tmp) / "model")
        requirements = model_dir / "requirements.txt"
        lock = lock_requirements(requirements.read_text() if requirements.is_file() else "")
        profiled = training_profile(environment, inputs.info)
        if profiled.profile is None:
            say(f"no training profile: {profiled.reason}; drift will be reported as unavailable")
        else:
            say(f"training profile of {', '.join(profiled.profile.features)} ({profiled.profile.rows} rows)")
        staged = Path(tmp) / "package"
        manifest = assemble_package(model_dir, staged, inputs.info, project, inputs.base, lock.text, profiled.profile)
        folder = root / manifest.digest.removeprefix("sha256:")
        package_dir = folder / "package"
        try:
            check_package(package_dir, manifest.digest)
        except ConveyorError:
            if package_dir.exists():
                shutil.rmtree(package_dir)
            folder.mkdir(parents=True, exist_ok=True)
            staged.replace(package_dir)
    say(f"package {manifest.digest[:19]} ({len(manifest.files)} files)")
    return StagedPackage(folder, package_dir, manifest, lock)


def _write_record(
    project: Project,
    environment: Environment,
    inputs: BuildInputs,
    staged: StagedPackage,
    archive: Path,
    image: ImageSection | None,
    previous: BuildRecord | None,
    same_image: bool,
) -> BuildRecord:
    """Write build.json; the test and gate summaries of the previous record are kept when its image is the same."""
    info = inputs.info
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "project": project.name,
        "env": environment.name,
        "created_at": (previous.created_at if previous else None) or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_by": environment.created_by,
        # absolute paths (a build.json copied alone still names its files); a build folder moved as a whole is
        # read from where it is now (BuildRecord.located)
        "package": {"digest": staged.digest, "dir": str(staged.dir), "archive": str(archive)},
        "model": {"name": info.name, "version": info.version, "run_id": info.run_id, "tags": dict(info.tags)},
        "image": image.to_json() if image else None,
        "tests": None,
        "gates": None,
    }
    if previous and same_image:
        data["tests"], data["gates"] = previous.tests, previous.gates
    path = staged.folder / BUILD_FILE
    write_json(path, data)
    return BuildRecord(path, data)


def _remember(
    project: Project,
    environment: Environment,
    request: tuple[str | None, str | None, str | None, str | None],
    digest: str,
) -> None:
    """Index the build as the latest of its environment and under its warm key, as the key was and is now
    (reading the registry may have touched its database file)."""
    key, model_spec, engine_name, base_image = request
    hex_digest = digest.removeprefix("sha256:")
    update_index(project.state_dir, key, environment.name, hex_digest)
    after = warm_key(environment, model_spec, engine_name, base_image)
    if after != key:
        update_index(project.state_dir, after, environment.name, hex_digest)


def _build_or_reuse_image(
    project: Project, inputs: BuildInputs, staged: StagedPackage, previous: BuildRecord | None, say: Progress
) -> tuple[ImageSection, bool]:
    """The image of the package: the previous one when its inputs and saved archive are unchanged, else built
    offline and saved once as image.oci.tar."""
    from conveyor.package.image import build_image, prepare_context, read_oci_archive

    engine = inputs.engine
    assert engine is not None  # noqa: S101 -- narrows for mypy: an image build's inputs name an engine
    folder, digest = staged.folder, staged.digest
    reference = f"localhost/{project.name}:{digest.removeprefix('sha256:')[:12]}"
    archive = folder / "image.oci.tar"
    image_inputs = _image_inputs(engine, inputs.base, staged.lock.digest)
    inputs_path = folder / INPUTS_FILE
    old = previous.image if previous else None
    if old and inputs_path.is_file() and archive.is_file():
        try:
            same = json.loads(inputs_path.read_text()) == image_inputs
            if same and read_oci_archive(archive).digest == old.digest:
                if engine.image_id(reference) != old.id:
                    say(f"loading {reference} from {archive.name}")
                    engine.load_oci_archive(archive, reference)
                say(f"image {reference} unchanged: reusing it")
                return old, True
        except ConveyorError:
            pass
    say("collecting wheels for the lock (offline build)")
    wheels = download_wheels(staged.lock)
    wheel = conveyor_wheel()
    context = folder / "context"
    containerfile = prepare_context(context, staged.dir, wheels, wheel, inputs.base, pip_wheel())
    say(f"building image {reference} with {engine.name} on {inputs.base}")
    labels = _labels(project, inputs.info, digest, inputs.base)
    oci = build_image(engine, context, containerfile, reference, labels, archive)
    shutil.rmtree(context, ignore_errors=True)
    image_id = engine.image_id(reference) or oci.config_digest
    write_json(inputs_path, image_inputs)
    say(f"image {oci.digest[:19]} saved to {archive.name} ({archive.stat().st_size / 1e6:.0f} MB)")
    return ImageSection(engine.name, reference, image_id, oci.digest, archive), False
