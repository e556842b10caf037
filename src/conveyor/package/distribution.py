"""A wheel of conveyor itself, installed in the image so that the image runs `conveyor serve`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import conveyor
from conveyor.errors import ConveyorError
from conveyor.package.cache import cache_dir
from conveyor.package.lock import pip_download, run_tool, uv_binary


def source_root() -> Path | None:
    """The source tree conveyor runs from (an editable install), or None for an installed wheel."""
    root = Path(conveyor.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "conveyor").is_dir() else None


def source_digest() -> str:
    """sha256 over conveyor's own files (names and bytes): changes whenever the code that goes in the image does."""
    package = Path(conveyor.__file__).resolve().parent
    digest = hashlib.sha256(conveyor.__version__.encode())
    root = source_root()
    files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if root:
        files.append(root / "pyproject.toml")
    for path in files:
        digest.update(
            path.relative_to(package.parent).as_posix().encode()
            if path.is_relative_to(package.parent)
            else path.name.encode()
        )
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def installed_from_wheel() -> Path | None:
    """The local wheel file this conveyor was installed from (pip's direct_url.json, PEP 610), if it is still there
    and still hashes as it did."""
    import json
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import unquote, urlparse

    try:
        direct = json.loads(distribution("conveyor").read_text("direct_url.json") or "null")
    except (PackageNotFoundError, ValueError):
        return None
    if not isinstance(direct, dict) or "archive_info" not in direct or not str(direct.get("url")).startswith("file:"):
        return None
    wheel = Path(unquote(urlparse(direct["url"]).path))
    recorded = str(direct["archive_info"].get("hash") or "")
    if not wheel.is_file() or wheel.suffix != ".whl":
        return None
    if recorded.startswith("sha256=") and hashlib.sha256(wheel.read_bytes()).hexdigest() != recorded[7:]:
        return None
    return wheel


def conveyor_wheel() -> Path:
    """conveyor's wheel: built from the source tree (uv build), the wheel file it was installed from, or downloaded
    for the installed version."""
    key = source_digest()[:32]
    folder = cache_dir("conveyor-wheel", key)
    found = sorted(folder.glob("conveyor-*.whl"))
    if found:
        return found[0]
    root = source_root()
    local = None if root else installed_from_wheel()
    if local is not None:
        import shutil

        shutil.copy2(local, folder / local.name)
    elif root:
        run_tool(
            [uv_binary(), "build", "--wheel", "--quiet", "--out-dir", str(folder), str(root)],
            "building conveyor's wheel (uv build)",
        )
    else:
        pip_download(
            ["--no-deps", "--only-binary=:all:", f"conveyor=={conveyor.__version__}"],
            folder,
            "downloading conveyor's wheel",
        )
    found = sorted(folder.glob("conveyor-*.whl"))
    if not found:
        raise ConveyorError(f"no conveyor wheel was produced in {folder}")
    return found[0]
