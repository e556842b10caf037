"""`open_lake`: an environment's data lake as one object, rooted at its URL, confined to it, with read lineage."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from fsspec.implementations.local import LocalFileSystem

from conveyor.errors import LakeError
from conveyor.lake.confinement import ConfinedFileSystem, lake_path
from conveyor.lake.credentials import storage_options
from conveyor.lake.location import LakeLocation, parse_lake_url
from conveyor.secrets.redaction import redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from conveyor.lake.lineage import LakeRead
    from conveyor.secrets.base import SecretStore


def has_magic(path: str) -> bool:
    """True when `path` is a glob pattern (`*`, `?` or `[...]`), as fsspec's `glob` reads it."""
    return any(char in path for char in "*?[")


def hidden_from_engines(name: str) -> bool:
    """True for a file or folder name Spark and Hadoop skip when listing: `_SUCCESS`, `.x.crc`, `_temporary`."""
    if name.startswith(("_metadata", "_common_metadata")):
        return False
    return (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")


class Lake:
    """An environment's data lake. Paths are relative to its root; reads are logged for `data_digest()`.

    `fs` is the rooted, confined fsspec filesystem for anything not wrapped here (pandas, pyarrow, glob, ...);
    it logs reads too. `storage_options` holds the backend's credentials: hand it to libraries, never print it.
    """

    def __init__(
        self, location: LakeLocation, fs: ConfinedFileSystem, storage_options: dict[str, Any] | None = None
    ) -> None:
        self.location = location
        self.fs = fs
        self.storage_options = storage_options or {}

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def env(self) -> str | None:
        """The environment's name, used in hints (`--env NAME`)."""
        return self.fs.env

    @env.setter
    def env(self, name: str | None) -> None:
        self.fs.env = name

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    def path(self, path: object) -> str:
        """`path` as a normalised path inside the lake, or `LakeError` if it would leave the lake."""
        inside = lake_path(path, self.location)
        self.fs._join(inside)  # symlink check on local lakes
        return inside

    def open(self, path: object, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open a lake file; reading modes are logged with the file's sha256."""
        return cast("IO[Any]", self.fs.open(path, mode, **kwargs))

    def ls(self, path: object = "", detail: bool = False) -> list[Any]:
        """The entries under `path` (names relative to the lake's root, or info dicts with `detail`)."""
        return list(self.fs.ls(self.path(path), detail=detail))

    def find(self, path: object = "") -> list[str]:
        """Every file under `path`, recursively."""
        return list(self.fs.find(self.path(path)))

    def exists(self, path: object) -> bool:
        return bool(self.fs.exists(self.path(path)))

    def info(self, path: object) -> dict[str, Any]:
        return self.fs.info(self.path(path))

    def put(
        self,
        local_path: str | os.PathLike[str],
        remote_path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
    ) -> list[str]:
        """Upload a local file or folder; `remote_path` defaults to its name, a trailing `/` puts it inside.

        A file already in the lake is replaced only with `overwrite=True`; otherwise nothing is written.
        """
        source = Path(local_path)
        if not source.exists():
            raise LakeError(f"cannot upload {source}: no such local file or folder")
        remote = "" if remote_path is None else os.fspath(remote_path)
        if not remote or remote.endswith("/"):
            remote = posixpath.join(remote, source.name)
        target = self.path(remote)
        if source.is_file():
            pairs = [(source, target)]
        else:
            files = sorted(p for p in source.rglob("*") if p.is_file())
            pairs = [(f, self.path(posixpath.join(target, f.relative_to(source).as_posix()))) for f in files]
        if not overwrite:
            existing = [name for _, name in pairs if self.fs.exists(name)]
            if existing:
                shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
                lake = f"the {self.env} lake" if self.env else "the lake"
                raise LakeError(
                    f"{lake} already holds {shown}; nothing was uploaded",
                    hint="Upload under another name, or pass --overwrite to replace it.",
                )
        for file, name in pairs:
            self.fs.put_file(str(file), name)
        return [name for _, name in pairs]

    def get(self, remote_path: object, local_path: str | os.PathLike[str] | None = None) -> list[Path]:
        """Download a lake file or folder (logged as read); `local_path` defaults to its name in the cwd."""
        remote = self.path(remote_path)
        target = Path(local_path) if local_path is not None else Path.cwd() / (posixpath.basename(remote) or "lake")
        if not self.fs.isdir(remote):
            if target.is_dir():
                target = target / posixpath.basename(remote)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(remote, str(target))
            return [target]
        written = []
        for name in self.fs.find(remote):
            local = target / posixpath.relpath(name, remote or ".")
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(name, str(local))
            written.append(local)
        return written

    def url_of(self, path: object = "") -> str:
        """The full URL of a lake path, for engines that take URLs (Spark); log it with `record_read`."""
        return self.location.url_of(self.path(path))

    def hadoop_url_of(self, path: object = "") -> str:
        """The URL Spark's Hadoop connectors read a lake path by: `s3a://` for S3, `abfss://CONTAINER@HOST/` for
        `az://`; other lakes as `url_of`."""
        url = self.url_of(path)
        scheme, rest = url.split("://", 1)
        if scheme == "s3":
            return f"s3a://{rest}"
        account = self.location.account or self.storage_options.get("account_name")
        if scheme == "az" and account:
            container, _, inside = rest.partition("/")
            return f"abfss://{container}@{account}.dfs.core.windows.net/{inside}".rstrip("/")
        return url

    def record_read(self, path: object = "") -> list[str]:
        """Log the files at `path` as read by an engine reading by URL (Spark): a file, every file under a folder, or
        every match of a glob (`events/2024-*/*.parquet`), skipping what such engines skip in folders and globs
        (names starting with `_` or `.`: `_SUCCESS`, `.crc` files; Parquet's `_metadata` is kept).

        Their sha256 is computed (by streaming them) when `reads()` or `data_digest()` is asked for. A folder
        holding a symlink that leads out of the lake is refused: the engine would follow it.
        """
        inside = self.path(path)
        roots = [self.path(name) for name in self.fs.glob(inside)] if has_magic(inside) else [inside]
        if not roots:
            raise self.fs.missing(inside)
        names: list[str] = []
        for root in roots:
            if self.fs.info(root)["type"] != "directory":
                names += [] if len(roots) > 1 and hidden_from_engines(posixpath.basename(root)) else [root]
                continue
            for name in map(self.path, self.fs.find(root)):
                below = posixpath.relpath(name, root or ".").split("/")
                if not any(hidden_from_engines(part) for part in below):
                    names.append(name)
        for name in names:
            self.fs.read_log.opened(name)
        return names

    def reads(self) -> list[LakeRead]:
        """Every file read so far through this lake, sorted, each with its sha256."""
        return self.fs.read_log.reads()

    def data_digest(self) -> str:
        """`sha256:<hex>` over the sorted `path\\tsha256` lines of `reads()`."""
        return self.fs.read_log.data_digest()


def open_lake(url: str, secrets: SecretStore | None, project_root: Path, *, env: str | None = None) -> Lake:
    """Open the lake at `url` with credentials from `secrets`; `env` names the environment in hints."""
    location = parse_lake_url(url, Path(project_root))
    options = storage_options(location, secrets)
    backend = _backend(location, options)
    return Lake(location, ConfinedFileSystem(location, backend, env=env), options)


def _backend(location: LakeLocation, options: dict[str, Any]) -> AbstractFileSystem:
    if location.kind == "file":
        return LocalFileSystem(auto_mkdir=True)
    try:
        if location.kind == "azure":
            from adlfs import AzureBlobFileSystem

            return AzureBlobFileSystem(**options)
        from s3fs import S3FileSystem

        return S3FileSystem(**options)
    except ImportError as exc:
        extra = "azure" if location.kind == "azure" else "s3"
        raise LakeError(
            f"the lake {location.url} needs a library that is not installed ({exc.name})",
            hint=f"Install it with: pip install 'conveyor[{extra}]'",
        ) from None
    except Exception as exc:  # the client refused its configuration; its words may quote a credential
        raise LakeError(
            f"cannot open the lake {location.url}: {redact(str(exc))}",
            hint="Check the lake's secrets with `conveyor secrets list --env ENV`.",
        ) from None
