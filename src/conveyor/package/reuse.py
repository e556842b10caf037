"""Reusing an unchanged build: the warm key (what decides a build while the registry has not changed) and the
check that the build it points at is still whole."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.package.cache import input_key
from conveyor.package.distribution import source_digest
from conveyor.package.lock import PYTHON_VERSION, SERVER_REQUIREMENTS
from conveyor.package.manifest import check_package
from conveyor.package.record import BUILD_FILE, BuildRecord, builds_dir, read_index

if TYPE_CHECKING:
    from conveyor.config import Environment, Project


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


def try_warm(project: Project, key: str | None, want_image: bool) -> BuildRecord | None:
    if key is None:
        return None
    hex_digest = read_index(project.state_dir).get("warm", {}).get(key)
    if not hex_digest:
        return None
    path = builds_dir(project.state_dir) / hex_digest / BUILD_FILE
    if not path.is_file():
        return None
    try:
        record = BuildRecord.load(path)
    except ConveyorError:
        return None
    if want_image and not record.image:
        return None
    image_archive = record.image.archive if record.image else None
    if not record.archive.is_file() or (image_archive is not None and not image_archive.is_file()):
        return None
    try:
        check_package(record.package_dir, record.digest)
    except ConveyorError:
        return None
    record.reused = True
    return record
