"""An fsspec filesystem rooted at a lake and confined to it, which logs every file it opens for reading.

A path that climbs out of the root (`..`, an absolute path, a URL of somewhere else, or on local disks a symlink
whose target resolves outside the root) is refused with `LakePathOutside`; a missing path raises
`LakePathMissing`, which names it, shows what is there and says how to upload. Both are `LakeError`s and also the
`PermissionError` / `FileNotFoundError` that code written against fsspec expects.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fsspec.compression import compr
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.utils import infer_compression

from conveyor.errors import LakeError, LakePathMissing, LakePathOutside
from conveyor.lake.lineage import HashingReader, ReadLog, sha256_of_stream

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fsspec import AbstractFileSystem

    from conveyor.lake.location import LakeLocation

SHOWN_ENTRIES = 8


def lake_path(path: Any, location: LakeLocation) -> str:
    """`path` normalised to a relative POSIX path inside the lake (`""` is its root), or `LakePathOutside`."""
    raw = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(raw, str):
        raise LakeError(f"a lake path must be text, not {type(raw).__name__}: {raw!r}")
    text = raw
    if "://" in text:
        prefix = location.url_prefix
        if text == prefix or text.startswith(prefix + "/"):
            text = text[len(prefix) :].lstrip("/")
        else:
            raise _outside(raw, location, "it is a URL of another place")
    if text.startswith("/"):
        raise _outside(raw, location, "it is an absolute path; lake paths are relative to the lake's root")
    normal = posixpath.normpath(text) if text else ""
    if normal == ".":
        normal = ""
    if normal == ".." or normal.startswith("../"):
        raise _outside(raw, location, "it climbs above the lake's root")
    return normal


def _outside(path: str, location: LakeLocation, why: str) -> LakePathOutside:
    return LakePathOutside(
        f"path {path!r} is outside the lake {location.url}: {why}",
        hint="Name files relative to the lake's root, e.g. `census/AdultCensusIncome.csv`; "
        "each environment reads only its own lake.",
    )


class ConfinedFileSystem(DirFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """`DirFileSystem` at the lake's root that refuses paths leaving it and logs reads into `read_log`."""

    cachable = False  # each lake keeps its own read log

    def __init__(
        self,
        location: LakeLocation,
        fs: AbstractFileSystem,
        read_log: ReadLog | None = None,
        env: str | None = None,
    ) -> None:
        super().__init__(path=location.root, fs=fs)
        self.location = location
        self.env = env
        self.read_log = read_log or ReadLog(self.sha256_of)
        self._real_root = os.path.realpath(location.root) if location.is_local else None

    # -- paths ---------------------------------------------------------------------------------------------

    def _join(self, path: Any) -> Any:
        if isinstance(path, dict):
            return {self._join(key): value for key, value in path.items()}
        if isinstance(path, list | tuple):
            return [self._join(item) for item in path]
        inside = lake_path(path, self.location)
        joined = self.path if not inside else self.fs.sep.join((self.path, inside))
        if self._real_root is not None:
            real = os.path.realpath(joined)
            if real != self._real_root and not real.startswith(self._real_root + os.sep):
                raise _outside(
                    str(path), self.location, f"it leads through a symlink to {real}, which is outside the root"
                )
        return joined

    def missing(self, path: Any) -> LakePathMissing:
        """The error for a path that does not exist: names it, lists the nearest folder, says how to upload."""
        inside = lake_path(path, self.location)
        parent = posixpath.dirname(inside)
        while True:
            try:
                listed = self.fs.ls(self._join(parent), detail=False)
                names = sorted(posixpath.basename(name.rstrip("/")) for name in listed)
                break
            except (OSError, ValueError):
                if not parent:
                    names = []
                    break
                parent = posixpath.dirname(parent)
        where = f"'{parent}/'" if parent else "the lake's root"
        shown = ", ".join(names[:SHOWN_ENTRIES]) + (", ..." if len(names) > SHOWN_ENTRIES else "")
        there = f"{where} holds: {shown}" if names else f"{where} is empty or does not exist"
        env = self.env or "ENV"
        lake = f"{self.env} lake" if self.env else f"lake {self.location.url}"
        return LakePathMissing(
            f"{inside or '/'!r} does not exist in the {lake}; {there}",
            hint=f"Upload it with: conveyor lake put FILE {inside} --env {env}",
        )

    @contextmanager
    def _named_if_missing(self, path: Any, *also: type[OSError]) -> Iterator[None]:
        """Turn the backend's FileNotFoundError (or `also`) for `path` into `missing(path)`."""
        try:
            yield
        except (FileNotFoundError, *also) as exc:  # type: ignore[misc]  # a tuple built at run time
            if isinstance(exc, LakeError):
                raise
            raise self.missing(path) from None

    # -- reading, logged -----------------------------------------------------------------------------------

    def sha256_of(self, path: str) -> str:
        """Stream the lake file `path` and return its sha256 hex (not logged as a read)."""
        with self.fs.open(self._join(path), "rb") as handle:
            return sha256_of_stream(handle)

    def open(self, path: Any, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "r" not in mode or "+" in mode:
            return super().open(path, mode, *args, **kwargs)
        text = {k: kwargs.pop(k) for k in ("encoding", "errors", "newline") if k in kwargs}
        compression = kwargs.pop("compression", None)
        inside = lake_path(path, self.location)
        if compression == "infer":
            compression = infer_compression(inside)
        with self._named_if_missing(inside, IsADirectoryError):
            inner = self.fs.open(self._join(inside), "rb", *args, **kwargs)
        reader: Any = HashingReader(inner, inside, self.read_log)  # hashes the stored bytes
        if compression:
            reader = compr[compression](reader, mode="rb")
        if "b" in mode:
            return reader
        return io.TextIOWrapper(reader, **text)

    def cat_file(self, path: Any, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        inside = lake_path(path, self.location)
        with self._named_if_missing(inside):
            data = self.fs.cat_file(self._join(inside), start=start, end=end, **kwargs)
        if start is None and end is None:
            self.read_log.record(inside, hashlib.sha256(data).hexdigest())
        else:
            self.read_log.opened(inside)
        return bytes(data)

    def cat(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self._expanded(path, kwargs.get("recursive", False))
        result = super().cat(path, *args, **kwargs)
        if isinstance(result, dict):
            for name, data in result.items():
                if isinstance(data, bytes):
                    self.read_log.record(lake_path(name, self.location), hashlib.sha256(data).hexdigest())
        elif isinstance(result, bytes) and isinstance(path, str):
            self.read_log.record(lake_path(path, self.location), hashlib.sha256(result).hexdigest())
        return result

    def cat_ranges(self, paths: Any, starts: Any, ends: Any, *args: Any, **kwargs: Any) -> Any:
        for name in paths:
            self.read_log.opened(lake_path(name, self.location))
        return super().cat_ranges(paths, starts, ends, *args, **kwargs)

    def get_file(self, rpath: Any, lpath: Any, **kwargs: Any) -> Any:
        inside = lake_path(rpath, self.location)
        with self._named_if_missing(inside):
            result = self.fs.get_file(self._join(inside), lpath, **kwargs)
        if os.path.isfile(lpath):
            with open(lpath, "rb") as handle:
                self.read_log.record(inside, sha256_of_stream(handle))
        return result

    def _expanded(self, path: Any, recursive: bool) -> list[str]:
        """Every path a recursive or glob operation on `path` touches, each checked (symlinks included)."""
        names = self.expand_path(path, recursive=recursive)
        for name in names:
            self._join(name)
        return list(names)

    def get(self, rpath: Any, *args: Any, **kwargs: Any) -> Any:
        for name in self._expanded(rpath, kwargs.get("recursive", False)):
            if self.isfile(name):
                self.read_log.opened(lake_path(name, self.location))
        return super().get(rpath, *args, **kwargs)

    def copy(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> Any:
        self._expanded(path1, kwargs.get("recursive", False))
        return super().copy(path1, path2, *args, **kwargs)

    # -- missing paths named -------------------------------------------------------------------------------

    def ls(self, path: Any = "", detail: bool = True, **kwargs: Any) -> Any:
        with self._named_if_missing(path):
            return super().ls(path, detail=detail, **kwargs)

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        with self._named_if_missing(path):
            return dict(super().info(path, **kwargs))

    def __repr__(self) -> str:
        return f"ConfinedFileSystem({self.location.url!r})"
