"""A reproducible tar of a package: sorted entries, fixed mtime, owner and modes, so equal packages give equal bytes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from conveyor.errors import CheckFailed
from conveyor.package.manifest import MANIFEST, package_files

MTIME = 0  # 1970-01-01: the archive says nothing about when it was made


def _info(name: str, *, directory: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o755 if executable else 0o644
    return info


def entries(package_dir: Path) -> list[str]:
    """The archive's file names: every package file and manifest.json, sorted."""
    return sorted([*package_files(package_dir), MANIFEST])


def write_archive(package_dir: Path, dest: Path) -> Path:
    """Write `package_dir` as an uncompressed POSIX tar at `dest` (rooted at `package/`)."""
    names = entries(package_dir)
    directories = {parent.as_posix() for name in names for parent in Path(name).parents if parent != Path(".")}
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("package", directory=True))
        for name in sorted([*directories, *names]):
            if name in directories:
                tar.addfile(_info(f"package/{name}", directory=True))
                continue
            data = (package_dir / name).read_bytes()
            tar.addfile(_info(f"package/{name}", directory=False, size=len(data)), io.BytesIO(data))
    tmp.replace(dest)
    return dest


def check_archive(archive: Path, package_dir: Path) -> None:
    """The archive holds exactly the package's files with the same bytes."""
    if not archive.is_file():
        raise CheckFailed(f"package archive {archive} is missing", hint="Rebuild with `conveyor build`.")
    problems = []
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
            expected = entries(package_dir)
            for name in sorted(set(members) | set(expected)):
                if name not in members:
                    problems.append(f"{name} is missing from the archive")
                elif name not in expected:
                    problems.append(f"the archive holds {name}, which the package does not")
                else:
                    handle = tar.extractfile(members[name])
                    if handle is None or handle.read() != (package_dir / name).read_bytes():
                        problems.append(f"{name} differs between the archive and the package")
    except tarfile.TarError as exc:
        problems.append(f"not a readable tar ({exc})")
    if problems:
        raise CheckFailed(f"archive {archive} does not match the package:\n  " + "\n  ".join(problems))
