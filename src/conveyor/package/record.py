"""Build records: `.conveyor/builds/<digest-hex>/build.json`, written by `conveyor build`, and finding them.

One `BuildRecord` for every room: the package, testing and release rooms all load builds here. A build is found
by the path of its build.json or folder, by its package digest or a unique prefix of it (`sha256:` optional), or,
by default, as the latest build (of an environment). A build.json that cannot be read as a build record is a
`CorruptBuildRecord` (a failed check, exit 1, as `conveyor verify` fails on a changed byte) wherever it is read;
a build that does not exist is a `NotFoundError` (exit 2).

The `tests` and `gates` sections are a summary for people. Nothing that decides reads them: what a build passed
is said by its signed attestations (`conveyor.package.attestations`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import CheckFailed, ConveyorError, NotFoundError
from conveyor.secrets.boundaries import mask_json

BUILD_FILE = "build.json"
INDEX_FILE = "index.json"
INPUTS_FILE = "inputs.json"  # what the image was made from besides the package
SCHEMA = 1
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PREFIX = re.compile(r"^(sha256:)?[0-9a-f]{4,64}$")
SHORT = 12


class CorruptBuildRecord(CheckFailed):
    """A build.json exists but is not a readable build record (bad JSON, missing or malformed sections)."""


def short_digest(digest: str) -> str:
    """The first 12 hex digits of a `sha256:…` digest, as builds and images are shown to people."""
    return digest.removeprefix("sha256:")[:SHORT]


def builds_dir(state_dir: Path) -> Path:
    return state_dir / "builds"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        out.write(json.dumps(mask_json(data), indent=2, sort_keys=False) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass(frozen=True)
class PackageSection:
    """`package`: the content-addressed package folder and its reproducible archive."""

    digest: str
    dir: Path
    archive: Path


@dataclass(frozen=True)
class ModelSection:
    """`model`: the registered model version the package was built from."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class ImageSection:
    """`image`: the OCI image, saved once as an OCI archive whose manifest digest is the image digest."""

    engine: str
    reference: str
    id: str
    digest: str
    archive: Path

    def to_json(self) -> dict[str, str]:
        return {
            "engine": self.engine,
            "reference": self.reference,
            "id": self.id,
            "digest": self.digest,
            "archive": str(self.archive),
        }


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise CorruptBuildRecord(f"build record {path} has no {name} section", hint="Rebuild with `conveyor build`.")
    return value


def _text(section: dict[str, Any], key: str, where: str, path: Path) -> str:
    value = section.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise CorruptBuildRecord(f"build record {path}: {where}.{key} is missing or not text: {value!r}")
    return value


class BuildRecord:
    """One build: `path` is its build.json, `data` the record as read (schema 1). The sections are read, typed,
    from `data`. As `build()` returns it: `reused` when nothing was rebuilt, `signed_by` the principal that signed
    its provenance (None when unsigned)."""

    def __init__(self, path: Path, data: dict[str, Any], reused: bool = False, signed_by: str | None = None) -> None:
        self.path = path
        self.data = data
        self.reused = reused
        self.signed_by = signed_by
        self._check()

    def _check(self) -> None:
        """Every section a build needs is there and well-formed (CorruptBuildRecord otherwise)."""
        if not isinstance(self.data, dict):
            raise CorruptBuildRecord(f"build record {self.path} is not a JSON object")
        package, _model, _image = self.package, self.model, self.image
        if not DIGEST.match(package.digest):
            raise CorruptBuildRecord(f"build record {self.path}: package.digest {package.digest!r} is not sha256:HEX")

    @classmethod
    def load(cls, path: Path | str) -> BuildRecord:
        """The record at `path` (a build.json, or a build folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / BUILD_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no build record at {path}", hint="Run `conveyor build` first.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptBuildRecord(
                f"build record {path} is not valid JSON ({exc})", hint="Rebuild with `conveyor build`."
            ) from None
        return cls(path.resolve(), data)

    # --- identity ----------------------------------------------------------------------------------------------
    @property
    def package(self) -> PackageSection:
        section = _section(self.data, "package", self.path)
        return PackageSection(
            digest=_text(section, "digest", "package", self.path),
            dir=self.located(_text(section, "dir", "package", self.path)),
            archive=self.located(_text(section, "archive", "package", self.path)),
        )

    def located(self, recorded: str) -> Path:
        """A path build.json records, found where the build folder is now: relative paths are the build folder's
        (what `conveyor build` writes), and an absolute one from the machine that built it, inside a build folder
        of the same name, is taken from this one (a build restored from a CI artifact, or a moved project)."""
        path = Path(recorded)
        if not path.is_absolute():
            return self.dir / path
        if not path.exists() and self.dir.name in path.parts:
            inside = path.parts[len(path.parts) - 1 - path.parts[::-1].index(self.dir.name) + 1 :]
            return self.dir.joinpath(*inside)
        return path

    @property
    def digest(self) -> str:
        """The package digest, `sha256:HEX`: what every later step names the build by."""
        return self.package.digest

    @property
    def short(self) -> str:
        return short_digest(self.digest)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def package_dir(self) -> Path:
        return self.package.dir

    @property
    def archive(self) -> Path:
        return self.package.archive

    @property
    def project(self) -> str:
        return str(self.data.get("project") or "")

    @property
    def env(self) -> str | None:
        env = self.data.get("env")
        return str(env) if env else None

    @property
    def created_at(self) -> str | None:
        return self.data.get("created_at")

    @property
    def created_by(self) -> str | None:
        return self.data.get("created_by")

    @property
    def project_root(self) -> Path:
        """The project the build belongs to (build.json lives in PROJECT/.conveyor/builds/HEX/)."""
        return self.path.parents[3]

    @property
    def model(self) -> ModelSection | None:
        """The registered model version the package holds (None for a package made without a registry)."""
        section = self.data.get("model")
        if section is None:
            return None
        if not isinstance(section, dict):
            raise CorruptBuildRecord(f"build record {self.path}: model is not an object")
        tags = section.get("tags") or {}
        run_id = section.get("run_id")
        return ModelSection(
            name=_text(section, "name", "model", self.path),
            version=_text(section, "version", "model", self.path),
            run_id=str(run_id) if run_id else None,
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        )

    @property
    def image(self) -> ImageSection | None:
        section = self.data.get("image")
        if not section:
            return None
        if not isinstance(section, dict):
            raise CorruptBuildRecord(f"build record {self.path}: image is not an object")
        digest = _text(section, "digest", "image", self.path)
        if not DIGEST.match(digest):
            raise CorruptBuildRecord(f"build record {self.path}: image.digest {digest!r} is not sha256:HEX")
        return ImageSection(
            engine=_text(section, "engine", "image", self.path),
            reference=_text(section, "reference", "image", self.path),
            id=_text(section, "id", "image", self.path),
            digest=digest,
            archive=self.located(_text(section, "archive", "image", self.path)),
        )

    # --- summaries for people (never trusted by anything that decides) -----------------------------------------
    @property
    def tests(self) -> dict[str, object] | None:
        """The last test run's summary as `conveyor test` wrote it (for showing; the attestation decides)."""
        value = self.data.get("tests")
        return value if isinstance(value, dict) else None

    @property
    def gates(self) -> dict[str, object] | None:
        """The last gate run's summary as `conveyor gate` wrote it (for showing; the attestation decides)."""
        value = self.data.get("gates")
        return value if isinstance(value, dict) else None

    # --- writing -----------------------------------------------------------------------------------------------
    def save(self) -> None:
        write_json(self.path, self.data)

    def reload(self) -> BuildRecord:
        return BuildRecord.load(self.path)

    def update(self, section: str, value: object) -> None:
        """Set one section (tests, gates) from the file as it is now, so concurrent sections are not lost."""
        fresh = BuildRecord.load(self.path).data
        fresh[section] = value
        self.data = fresh
        self.save()

    def model_ref(self) -> str:
        """`NAME/VERSION` of the model, or `-` when the build names none."""
        model = self.model
        return f"{model.name}/{model.version}" if model else "-"

    def __repr__(self) -> str:
        return f"BuildRecord({self.path!s}, {self.short})"


def read_index(state_dir: Path) -> dict[str, Any]:
    try:
        index = json.loads((builds_dir(state_dir) / INDEX_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {"warm": {}, "latest": {}}
    return index if isinstance(index, dict) else {"warm": {}, "latest": {}}


def update_index(state_dir: Path, warm_key: str | None, env: str, hex_digest: str) -> None:
    index = read_index(state_dir)
    if warm_key:
        index.setdefault("warm", {})[warm_key] = hex_digest
    index.setdefault("latest", {})[env] = hex_digest
    index["last"] = hex_digest
    write_json(builds_dir(state_dir) / INDEX_FILE, index)


def latest_build(state_dir: Path, env: str | None = None) -> BuildRecord:
    """The build made last (in `env`, when given and known; else the last of all)."""
    root = builds_dir(state_dir)
    index = read_index(state_dir)
    chosen = (index.get("latest", {}).get(env) if env else None) or index.get("last")
    if not chosen or not (root / str(chosen) / BUILD_FILE).is_file():
        where = f" for {env}" if env else ""
        raise NotFoundError(f"no build{where} in {root}", hint="Run `conveyor build` first.")
    return BuildRecord.load(root / str(chosen))


def find_build(state_dir: Path, spec: str | os.PathLike[str] | None = None, env: str | None = None) -> BuildRecord:
    """A build by the path of its build.json or folder, by package digest or a unique prefix of it (at least 4
    hex digits, `sha256:` optional), or, without `spec`, the latest build (of `env`, else of all)."""
    if spec is None or not str(spec).strip():
        return latest_build(state_dir, env)
    root = builds_dir(state_dir)
    path = Path(spec)
    if path.is_file() or (path / BUILD_FILE).is_file():
        return BuildRecord.load(path)
    text = str(spec).strip().lower()
    if not PREFIX.match(text):
        raise NotFoundError(
            f"build {str(spec)!r} is neither a build (folder or build.json) nor a package digest",
            hint="Pass the path of a build.json, or its package digest (a unique prefix of 4 or more digits).",
        )
    prefix = text.removeprefix("sha256:")
    matches = sorted(p.parent for p in root.glob(f"{prefix}*/{BUILD_FILE}")) if root.is_dir() else []
    if not matches:
        raise NotFoundError(
            f"no build with digest {str(spec)!r} in {root}",
            hint="Build one with `conveyor build`, list builds with `ls .conveyor/builds`, or pass a build.json.",
        )
    if len(matches) > 1:
        names = ", ".join(short_digest(m.name) for m in matches[:5])
        raise ConveyorError(
            f"build prefix {str(spec)!r} matches {len(matches)} builds: {names}", hint="Give more digits."
        )
    return BuildRecord.load(matches[0])


def list_builds(state_dir: Path) -> list[BuildRecord]:
    """Every readable build of the project, newest first (by `created_at`, then digest)."""
    root = builds_dir(state_dir)
    found = []
    for path in sorted(root.glob(f"*/{BUILD_FILE}")) if root.is_dir() else []:
        with contextlib.suppress(CorruptBuildRecord):
            found.append(BuildRecord.load(path))
    return sorted(found, key=lambda r: (r.created_at or "", r.digest), reverse=True)


def find_build_by_image(state_dir: Path, reference: str) -> BuildRecord | None:
    """The build whose image has this reference (`localhost/census:1a2b...`), digest or id, if any."""
    root = builds_dir(state_dir)
    for path in sorted(root.glob(f"*/{BUILD_FILE}")) if root.is_dir() else []:
        try:
            record = BuildRecord.load(path)
        except CorruptBuildRecord:
            continue
        image = record.image
        if image is not None and reference in (image.reference, image.digest, image.id):
            return record
    return None
