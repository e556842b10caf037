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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import conveyor
from conveyor.errors import ConveyorError
from conveyor.package.archive import write_archive
from conveyor.package.cache import input_key
from conveyor.package.distribution import conveyor_wheel, source_digest
from conveyor.package.lock import (
    PYTHON_VERSION,
    SERVER_REQUIREMENTS,
    RequirementsLock,
    download_wheels,
    lock_requirements,
    pip_wheel,
)
from conveyor.package.manifest import PackageManifest, check_package, hash_files
from conveyor.package.record import (
    BUILD_FILE,
    SCHEMA,
    BuildRecord,
    builds_dir,
    read_index,
    update_index,
    write_json,
)

if TYPE_CHECKING:
    from conveyor.config import Environment, Project
    from conveyor.package.engine import ContainerEngine
    from conveyor.registry import ModelVersionInfo

Progress = Callable[[str], None]
NO_ENGINE = "none"
SKIPPED_CODE = ("conveyor_pyfunc.py", "__pycache__")
INPUTS_FILE = "inputs.json"


def _registry_fingerprint(environment: Environment) -> list[Any] | None:
    """Size and mtime of a local sqlite registry (and its journal files); None for anything else."""
    uri = environment.registry_uri
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    if not db.is_absolute():
        db = Path("/") / db
    stats = []
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")):
        if path.exists():
            stat = path.stat()
            stats.append([path.name, stat.st_size, stat.st_mtime_ns])
    return stats or None


def _engines_on_path() -> str:
    from conveyor.package.engine import ENGINES

    return "auto:" + ",".join(name for name in ENGINES if shutil.which(name))


def warm_key(
    environment: Environment, model_spec: str | None, engine: str | None, base_image: str | None
) -> str | None:
    """What decides a build when the registry has not changed; None when that cannot be known cheaply."""
    fingerprint = _registry_fingerprint(environment)
    if fingerprint is None:
        return None
    return input_key(
        {
            "env": environment.name,
            "registry": environment.registry_uri,
            "fingerprint": fingerprint,
            "model": model_spec,
            "engine": engine or os.environ.get("CONVEYOR_ENGINE") or _engines_on_path(),
            "base": base_image or os.environ.get("CONVEYOR_BASE_IMAGE"),
            "conveyor": source_digest(),
            "server": list(SERVER_REQUIREMENTS),
            "python": PYTHON_VERSION,
        }
    )


def _try_warm(project: Project, key: str | None, want_image: bool) -> BuildRecord | None:
    if key is None:
        return None
    hex_digest = read_index(project.state_dir).get("warm", {}).get(key)
    if not hex_digest:
        return None
    path = builds_dir(project.state_dir) / hex_digest / BUILD_FILE
    if not path.is_file():
        return None
    record = BuildRecord.load(path)
    if want_image and not record.image:
        return None
    image_archive = Path(record.image["archive"]) if record.image else None
    if not record.archive.is_file() or (image_archive is not None and not image_archive.is_file()):
        return None
    try:
        check_package(record.package_dir, record.digest)
    except ConveyorError:
        return None
    record.reused = True
    return record


def _normalize_modes(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def assemble_package(
    model_dir: Path, dest: Path, info: ModelVersionInfo, project: Project, base_image: str | None, lock_text: str
) -> PackageManifest:
    """Lay out the package (score.py + code from the registered model, model files, lock) and its manifest."""
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
        if item.is_dir():
            shutil.copytree(item, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(item, target)
    shutil.copytree(model_dir / "data" / "model", dest / "model")
    (dest / "requirements.lock").write_text(lock_text)
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


def build(
    project: Project,
    environment: Environment,
    model_spec: str | None = None,
    engine: str | ContainerEngine | None = None,
    base_image: str | None = None,
    progress: Progress | None = None,
) -> BuildRecord:
    """Build the package (and, with a container engine, the image) for a model version; reuse when unchanged.

    `engine` is podman, docker, buildah, "none" (package only) or None (the first that works; package only with a
    message when none does). Returns the BuildRecord (`.path` is build.json, `.data` the record, `.reused`).
    """
    say = progress or (lambda _message: None)
    engine_name = engine if isinstance(engine, str) or engine is None else engine.name
    key = warm_key(environment, model_spec, engine_name, base_image)
    warm = _try_warm(project, key, want_image=engine_name != NO_ENGINE and bool(engine_name))
    if warm:
        say(
            f"nothing changed: reusing build {warm.short} (model {warm.data['model']['name']} "
            f"{warm.data['model']['version']})"
        )
        update_index(project.state_dir, key, environment.name, warm.digest.removeprefix("sha256:"))
        return warm
    started = time.monotonic()
    from conveyor.package.baseimage import ensure_base_image, requested_base_image
    from conveyor.registry import ModelRegistry

    chosen_engine = _resolve_engine(engine, say)
    registry = ModelRegistry(environment)
    info = registry.resolve(model_spec)
    say(f"model {info.name} version {info.version} from the {environment.name} registry")
    base = ensure_base_image(chosen_engine, base_image, say) if chosen_engine else requested_base_image(base_image)
    root = builds_dir(project.state_dir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=root) as tmp:
        model_dir = registry.download(info, Path(tmp) / "model")
        requirements = model_dir / "requirements.txt"
        lock = lock_requirements(requirements.read_text() if requirements.is_file() else "")
        staged = Path(tmp) / "package"
        manifest = assemble_package(model_dir, staged, info, project, base, lock.text)
        digest = manifest.digest
        folder = root / digest.removeprefix("sha256:")
        package_dir = folder / "package"
        try:
            check_package(package_dir, digest)
        except ConveyorError:
            if package_dir.exists():
                shutil.rmtree(package_dir)
            folder.mkdir(parents=True, exist_ok=True)
            staged.replace(package_dir)
    say(f"package {digest[:19]} ({len(manifest.files)} files)")
    archive = write_archive(package_dir, folder / "package.tar")
    previous = BuildRecord.load(folder) if (folder / BUILD_FILE).is_file() else None
    record_data: dict[str, Any] = {
        "schema": SCHEMA,
        "project": project.name,
        "env": environment.name,
        "created_at": (previous.data.get("created_at") if previous else None)
        or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_by": environment.created_by,
        "package": {"digest": digest, "dir": str(package_dir), "archive": str(archive)},
        "model": {"name": info.name, "version": info.version, "run_id": info.run_id, "tags": dict(info.tags)},
        "image": None,
        "tests": None,
        "gates": None,
    }
    reused_image = False
    if chosen_engine:
        record_data["image"], reused_image = _build_or_reuse_image(
            chosen_engine, project, info, package_dir, digest, base, lock, previous, say
        )
    if previous and (reused_image or (not chosen_engine and not previous.image)):
        record_data["tests"], record_data["gates"] = previous.data.get("tests"), previous.data.get("gates")
    write_json(folder / BUILD_FILE, record_data)
    update_index(project.state_dir, key, environment.name, digest.removeprefix("sha256:"))
    # reading the registry may have touched its database file: remember the key as it is now, too
    after = warm_key(environment, model_spec, engine_name, base_image)
    if after != key:
        update_index(project.state_dir, after, environment.name, digest.removeprefix("sha256:"))
    say(f"build {digest.removeprefix('sha256:')[:12]} ready in {time.monotonic() - started:.1f} s: {folder}")
    return BuildRecord(folder / BUILD_FILE, record_data, reused=reused_image)


def _build_or_reuse_image(
    engine: ContainerEngine,
    project: Project,
    info: ModelVersionInfo,
    package_dir: Path,
    digest: str,
    base: str,
    lock: RequirementsLock,
    previous: BuildRecord | None,
    say: Progress,
) -> tuple[dict[str, Any], bool]:
    from conveyor.package.image import build_image, prepare_context, read_oci_archive

    folder = package_dir.parent
    reference = f"localhost/{project.name}:{digest.removeprefix('sha256:')[:12]}"
    archive = folder / "image.oci.tar"
    inputs = _image_inputs(engine, base, lock.digest)
    inputs_path = folder / INPUTS_FILE
    if previous and previous.image and inputs_path.is_file() and archive.is_file():
        try:
            same = json.loads(inputs_path.read_text()) == inputs
            if same and read_oci_archive(archive).digest == previous.image["digest"]:
                if engine.image_id(reference) != previous.image["id"]:
                    say(f"loading {reference} from {archive.name}")
                    engine.load_oci_archive(archive, reference)
                say(f"image {reference} unchanged: reusing it")
                return previous.image, True
        except ConveyorError:
            pass
    say("collecting wheels for the lock (offline build)")
    wheels = download_wheels(lock)
    wheel = conveyor_wheel()
    context = folder / "context"
    containerfile = prepare_context(context, package_dir, wheels, wheel, base, pip_wheel())
    say(f"building image {reference} with {engine.name} on {base}")
    oci = build_image(engine, context, containerfile, reference, _labels(project, info, digest, base), archive)
    shutil.rmtree(context, ignore_errors=True)
    image_id = engine.image_id(reference) or oci.config_digest
    write_json(inputs_path, inputs)
    say(f"image {oci.digest[:19]} saved to {archive.name} ({archive.stat().st_size / 1e6:.0f} MB)")
    return {
        "engine": engine.name,
        "reference": reference,
        "id": image_id,
        "digest": oci.digest,
        "archive": str(archive),
    }, False
