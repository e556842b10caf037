"""Build records: `.conveyor/builds/<digest-hex>/build.json`, written by build and updated by test and gate."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.secrets.boundaries import mask_json

BUILD_FILE = "build.json"
INDEX_FILE = "index.json"
SCHEMA = 1


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


@dataclass
class BuildRecord:
    """One build: `path` is its build.json, `data` the record (schema 1), `reused` when nothing was rebuilt."""

    path: Path
    data: dict[str, Any]
    reused: bool = False

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def digest(self) -> str:
        return self.data["package"]["digest"]

    @property
    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def package_dir(self) -> Path:
        return Path(self.data["package"]["dir"])

    @property
    def archive(self) -> Path:
        return Path(self.data["package"]["archive"])

    @property
    def image(self) -> dict[str, Any] | None:
        return self.data.get("image")

    @property
    def project_root(self) -> Path:
        """The project the build belongs to (build.json lives in PROJECT/.conveyor/builds/HEX/)."""
        return self.path.parents[3]

    def save(self) -> None:
        write_json(self.path, self.data)

    def reload(self) -> BuildRecord:
        return BuildRecord(self.path, json.loads(self.path.read_text()), self.reused)

    def update(self, section: str, value: Any) -> None:
        """Set one section (tests, gates) from the file as it is now, so concurrent sections are not lost."""
        fresh = json.loads(self.path.read_text())
        fresh[section] = value
        self.data = fresh
        self.save()

    @classmethod
    def load(cls, path: Path) -> BuildRecord:
        path = Path(path)
        if path.is_dir():
            path = path / BUILD_FILE
        try:
            return cls(path, json.loads(path.read_text()))
        except FileNotFoundError:
            raise NotFoundError(f"no build record at {path}", hint="Run `conveyor build` first.") from None
        except ValueError as exc:
            raise NotFoundError(f"{path} is not a valid build record ({exc})") from None


def read_index(state_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((builds_dir(state_dir) / INDEX_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {"warm": {}, "latest": {}}


def update_index(state_dir: Path, warm_key: str | None, env: str, hex_digest: str) -> None:
    index = read_index(state_dir)
    if warm_key:
        index.setdefault("warm", {})[warm_key] = hex_digest
    index.setdefault("latest", {})[env] = hex_digest
    index["last"] = hex_digest
    write_json(builds_dir(state_dir) / INDEX_FILE, index)


def find_build(state_dir: Path, spec: str | None = None, env: str | None = None) -> BuildRecord:
    """A build by path (folder or build.json), digest or digest prefix; default the last one built (in `env`)."""
    root = builds_dir(state_dir)
    if spec and Path(spec).exists() and not (root / spec).is_dir():
        return BuildRecord.load(Path(spec).resolve())
    if not spec:
        index = read_index(state_dir)
        chosen = (index.get("latest", {}).get(env) if env else None) or index.get("last")
        if not chosen or not (root / chosen / BUILD_FILE).is_file():
            where = f" for {env}" if env else ""
            raise NotFoundError(f"no build{where} in {root}", hint="Run `conveyor build` first.")
        return BuildRecord.load(root / chosen)
    wanted = spec.removeprefix("sha256:").lower()
    matches = sorted(p.name for p in root.glob(f"{wanted}*") if (p / BUILD_FILE).is_file()) if root.is_dir() else []
    if not matches:
        raise NotFoundError(
            f"no build {spec!r} in {root}",
            hint="List builds with `ls .conveyor/builds`, or pass the path of a build.json.",
        )
    if len(matches) > 1:
        raise NotFoundError(f"build prefix {spec!r} is ambiguous: {', '.join(m[:16] for m in matches)}")
    return BuildRecord.load(root / matches[0])


def find_build_by_image(state_dir: Path, reference: str) -> BuildRecord | None:
    """The build whose image has this reference (`localhost/census:1a2b...`) or digest, if any."""
    root = builds_dir(state_dir)
    for path in sorted(root.glob(f"*/{BUILD_FILE}")) if root.is_dir() else []:
        record = BuildRecord.load(path)
        image = record.image or {}
        if reference in (image.get("reference"), image.get("digest"), image.get("id")):
            return record
    return None
