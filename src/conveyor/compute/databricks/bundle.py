"""What a Databricks run needs from this machine: the project's code as an archive and conveyor as a wheel.

Both are built deterministically (sorted members, fixed times), so their digests name them on the workspace and
an unchanged project or conveyor is not uploaded twice. The wheel is made from the conveyor package that is
running, as it is now (PEP 427: a zip with a `.dist-info` folder); its console script
`conveyor-databricks-task` is the entry point of the run's Python wheel task.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import conveyor

if TYPE_CHECKING:
    from conveyor.config.environment import ProjectView

TASK_ENTRY_POINT = "conveyor-databricks-task"
TASK_FUNCTION = "conveyor.compute.databricks.task:main"
SKIPPED_DIRS = {".conveyor", ".git", ".venv", "__pycache__", ".pytest_cache", "results", "htmlcov", "mlruns"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Artifact:
    """A file to upload: its name, bytes and the first 16 hex of their sha256."""

    name: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


def project_files(project: ProjectView) -> list[Path]:
    """The project's files that a run needs: everything but state, caches and version control."""
    root = project.root
    files = []
    for path in sorted(root.rglob("*")):
        inside = path.relative_to(root).parts
        if path.is_file() and not any(part in SKIPPED_DIRS for part in inside) and path.suffix != ".pyc":
            files.append(path)
    return files


def project_archive(project: ProjectView) -> Artifact:
    """The project's code as a gzipped tar with fixed times and owners."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for path in project_files(project):
            info = tarfile.TarInfo(path.relative_to(project.root).as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return Artifact(f"{project.name}.tar.gz", buffer.getvalue())


def conveyor_wheel() -> Artifact:
    """A wheel of the running conveyor: its package files, its metadata, and the run's entry point."""
    package = Path(conveyor.__file__).resolve().parent
    version = conveyor.__version__
    info = f"conveyor-{version}.dist-info"
    members: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            members.append((path.relative_to(package.parent).as_posix(), path.read_bytes()))
    members += [
        (f"{info}/METADATA", _metadata(version).encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: conveyor\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (
            f"{info}/entry_points.txt",
            f"[console_scripts]\nconveyor = conveyor.cli.main:main\n{TASK_ENTRY_POINT} = {TASK_FUNCTION}\n".encode(),
        ),
    ]
    record = "".join(f"{name},sha256={_b64_digest(data)},{len(data)}\n" for name, data in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in members:
            entry = zipfile.ZipInfo(name, FIXED_TIME)
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return Artifact(f"conveyor-{version}-py3-none-any.whl", buffer.getvalue())


def _metadata(version: str) -> str:
    """Core metadata: the installed distribution's requirements and extras, so the cluster installs the same."""
    lines = ["Metadata-Version: 2.1", "Name: conveyor", f"Version: {version}"]
    try:
        installed = metadata.metadata("conveyor")
    except metadata.PackageNotFoundError:
        return "\n".join(lines) + "\n"
    lines += [f"Requires-Python: {spec}" for spec in installed.get_all("Requires-Python") or []]
    lines += [f"Requires-Dist: {req}" for req in installed.get_all("Requires-Dist") or []]
    lines += [f"Provides-Extra: {extra}" for extra in installed.get_all("Provides-Extra") or []]
    return "\n".join(lines) + "\n"


def _b64_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
