"""Loading a package directory's `score.py`: path set-up, model directory, and the entry points it defines."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.secrets.boundaries import mask_json

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType


class ScoreInitError(ConveyorError):
    """`score.py` could not be imported, or its `init()` raised."""


@dataclass
class PackageInfo:
    """What the server says about the model it serves: name and version from `manifest.json` when present, and
    the package digest (the manifest's canonical hash, what the ledger names) of a built package."""

    package_dir: Path
    name: str
    version: str
    manifest: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The package digest of a `manifest.json` document: the same canonical form `conveyor.package.manifest` hashes
    (computed here so that the server need not import the packaging room; a test keeps the two equal)."""
    canonical = json.dumps(mask_json(manifest), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class ScoreModule:
    """The entry points of a loaded `score.py`."""

    module: ModuleType
    run: Callable[[Any], Any]
    run_batch: Callable[[list[Any]], list[Any]] | None
    example: Any


def check_package_dir(package_dir: Path) -> Path:
    """`package_dir` resolved, or a ConveyorError saying why it cannot be served."""
    package_dir = Path(package_dir).expanduser().resolve()
    if not package_dir.is_dir():
        raise ConveyorError(
            f"package directory {package_dir} does not exist",
            hint="Pass the directory `conveyor build` wrote (it holds score.py, inference/ and model/).",
        )
    if not (package_dir / "score.py").is_file():
        raise ConveyorError(
            f"{package_dir} is not a package directory: score.py is missing",
            hint="Pass the directory that holds score.py, inference/ and model/ (what `conveyor build` writes).",
        )
    return package_dir


def read_package_info(package_dir: Path, name: str | None = None) -> PackageInfo:
    """Name and version of the served model: `manifest.json`'s model (or `registered-model.json` of a folder
    downloaded from a registry), else the directory's name and "1"."""
    manifest: dict[str, Any] = {}
    path = package_dir / "manifest.json"
    built = path.is_file()
    if not built:
        path = package_dir / "registered-model.json"
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except ValueError as exc:
            raise ConveyorError(f"{path} is not valid JSON: {exc}", hint="Rebuild the package.") from None
    found = manifest.get("model")
    model: dict[str, Any] = found if isinstance(found, dict) else {}
    model_name = name or str(model.get("name") or manifest.get("name") or package_dir.name)
    version = str(model.get("version") or manifest.get("version") or "1")
    digest = manifest_digest(manifest) if built and isinstance(manifest, dict) else None
    return PackageInfo(package_dir, model_name, version, manifest, digest)


_imported: dict[Path, ScoreModule] = {}


def import_score(package_dir: Path) -> ScoreModule:
    """Import `PKG/score.py` with PKG on `sys.path` and `CONVEYOR_MODEL_DIR=PKG/model` (init() not called).

    Imported once per process: a supervisor that imported it before forking hands it to its workers.
    """
    package_dir = check_package_dir(package_dir)
    if package_dir in _imported:
        return _imported[package_dir]
    if str(package_dir) not in sys.path:
        sys.path.insert(0, str(package_dir))
    if (package_dir / "model").is_dir():
        os.environ["CONVEYOR_MODEL_DIR"] = str(package_dir / "model")
    spec = importlib.util.spec_from_file_location("score", package_dir / "score.py")
    assert spec is not None and spec.loader is not None  # noqa: S101 -- narrows for mypy: a path ending in .py always has a spec and loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["score"] = module
    spec.loader.exec_module(module)
    run = getattr(module, "run", None)
    if not callable(run):
        raise ScoreInitError(
            f"{package_dir / 'score.py'} defines no run(request) function",
            hint="score.py must define init() and run(request); run_batch(requests) is optional.",
        )
    run_batch = getattr(module, "run_batch", None)
    loaded = _imported[package_dir] = ScoreModule(
        module=module,
        run=run,
        run_batch=run_batch if callable(run_batch) else None,
        example=getattr(module, "EXAMPLE_REQUEST", None),
    )
    return loaded


def load_and_init(package_dir: Path) -> ScoreModule:
    """Import score.py and call its `init()` once (if it defines one)."""
    score = import_score(package_dir)
    init = getattr(score.module, "init", None)
    if callable(init):
        init()
    return score
