"""The lake as a training script sees it: every call crosses the training channel to `conveyor train`'s process,
which holds the credentials, confines the path and records the read.

There is no inner filesystem, no storage options and no URL here (Spark gets a URL only through
`ctx.spark_url`, which records the read): the script can read the lake only in ways that are recorded.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from conveyor.lake.lineage import LakeRead
from conveyor.training.remote_errors import RemoteError, decode_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from fsspec import AbstractFileSystem

    from conveyor.training.channel import Client

CHUNK = 1 << 20
COMPRESSIONS: dict[str, Callable[[IO[bytes]], Any]] = {
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    "bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    "xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),  # noqa: SIM115
}
SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}


class _RemoteReader(io.RawIOBase):
    """A lake file read in ranges through the channel."""

    def __init__(self, client: Client, path: str) -> None:
        super().__init__()
        self._client = client
        self._path = path
        self._position = 0
        self._size: int | None = None
        info = self._call("lake.info", path=path)["info"]
        if info.get("type") == "directory":
            raise IsADirectoryError(f"{path!r} is a folder of the lake, not a file")
        self._size = int(info.get("size") or 0)

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return self._client.request(op, **fields)[0]
        except RemoteError as error:
            raise decode_error(error) from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size or 0}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._range(self._position, self._position + len(view))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while data := self._range(self._position, self._position + 16 * CHUNK):
            parts.append(data)
            self._position += len(data)
        return b"".join(parts)

    def _range(self, start: int, end: int) -> bytes:
        if self._size is not None and start >= self._size:
            return b""
        try:
            return self._client.request("lake.read", path=self._path, start=start, end=end)[1]
        except RemoteError as error:
            raise decode_error(error) from None


class _RemoteWriter(io.RawIOBase):
    """A lake file written through the channel, a chunk at a time."""

    def __init__(self, client: Client, path: str, overwrite: bool) -> None:
        super().__init__()
        self._client = client
        try:
            self._handle = client.request("lake.open_write", path=path, overwrite=overwrite)[0]["handle"]
        except RemoteError as error:
            raise decode_error(error) from None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._client.request("lake.write", chunk, handle=self._handle)
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._client.request("lake.close_write", handle=self._handle)
        super().close()


class RemoteLake:
    """The environment's data lake: paths relative to its root; reads are recorded by conveyor for lineage."""

    def __init__(self, client: Client, env: str) -> None:
        self._client = client
        self.env = env
        self._fs: AbstractFileSystem | None = None

    def __repr__(self) -> str:
        return f"Lake({self.env} lake)"

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return self._client.request(op, **fields)[0]
        except RemoteError as error:
            raise decode_error(error) from None

    @staticmethod
    def path(path: Any) -> str:
        """`path` as text (the lake's own process confines it: `..`, absolute paths and URLs are refused there)."""
        text = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(text, str):
            raise TypeError(f"a lake path must be text, not {type(text).__name__}")
        return text

    def open(
        self,
        path: Any,
        mode: str = "rb",
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        compression: str | None = None,
    ) -> IO[Any]:
        """Open a lake file: reading modes are recorded with the file's sha256; `wb`/`w`/`xb`/`x` write."""
        name = self.path(path)
        if "a" in mode or "+" in mode:
            raise ValueError(f"mode {mode!r}: lake files are read or written whole (r, rb, w, wb, x, xb)")
        binary: IO[bytes]
        if "w" in mode or "x" in mode:
            binary = io.BufferedWriter(_RemoteWriter(self._client, name, overwrite="x" not in mode), CHUNK)
        else:
            binary = io.BufferedReader(_RemoteReader(self._client, name), CHUNK)
            if compression == "infer":
                compression = SUFFIXES.get(posixpath.splitext(name)[1])
            if compression:
                binary = COMPRESSIONS[compression](binary)
        if "b" in mode:
            return binary
        return io.TextIOWrapper(binary, encoding=encoding or "utf-8", errors=errors, newline=newline)

    def ls(self, path: Any = "", detail: bool = False) -> list[Any]:
        """The entries under `path` (names relative to the lake's root, or info dicts with `detail`)."""
        return list(self._call("lake.ls", path=self.path(path), detail=detail)["entries"])

    def find(self, path: Any = "") -> list[str]:
        """Every file under `path`, recursively."""
        return list(self._call("lake.find", path=self.path(path))["names"])

    def exists(self, path: Any) -> bool:
        return bool(self._call("lake.exists", path=self.path(path))["exists"])

    def info(self, path: Any) -> dict[str, Any]:
        return dict(self._call("lake.info", path=self.path(path))["info"])

    def get(self, remote_path: Any, local_path: str | os.PathLike[str] | None = None) -> list[Path]:
        """Download a lake file or folder (recorded as read); `local_path` defaults to its name in the cwd."""
        remote = self.path(remote_path)
        target = Path(local_path) if local_path is not None else Path.cwd() / (posixpath.basename(remote) or "lake")
        if self.info(remote).get("type") != "directory":
            if target.is_dir():
                target = target / posixpath.basename(remote)
            pairs = [(remote, target)]
        else:
            pairs = [(name, target / posixpath.relpath(name, remote or ".")) for name in self.find(remote)]
        for name, local in pairs:
            local.parent.mkdir(parents=True, exist_ok=True)
            with self.open(name, "rb") as source, open(local, "wb") as sink:
                while block := source.read(CHUNK):
                    sink.write(block)
        return [local for _, local in pairs]

    def put(self, local_path: str | os.PathLike[str], remote_path: Any = None, overwrite: bool = False) -> list[str]:
        """Upload a local file or folder; a file already in the lake is replaced only with `overwrite=True`."""
        source = Path(local_path)
        remote = "" if remote_path is None else self.path(remote_path)
        if not remote or remote.endswith("/"):
            remote = posixpath.join(remote, source.name)
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        pairs = [
            (f, remote if f == source else posixpath.join(remote, f.relative_to(source).as_posix())) for f in files
        ]
        for file, name in pairs:
            with open(file, "rb") as handle, self.open(name, "wb" if overwrite else "xb") as sink:
                while block := handle.read(CHUNK):
                    sink.write(block)
        return [name for _, name in pairs]

    def rm(self, path: Any, recursive: bool = False) -> None:
        self._call("lake.rm", path=self.path(path), recursive=recursive)

    def makedirs(self, path: Any) -> None:
        self._call("lake.mkdir", path=self.path(path))

    def reads(self) -> list[LakeRead]:
        """Every file read so far in this run, sorted, each with its sha256."""
        return [LakeRead(path, sha) for path, sha in self._call("lake.reads")["reads"]]

    def data_digest(self) -> str:
        """`sha256:<hex>` over the sorted `path\\tsha256` lines of `reads()`."""
        digest = self._call("lake.reads")["digest"]
        if digest is None:
            import hashlib

            return "sha256:" + hashlib.sha256(b"").hexdigest()
        return str(digest)

    def spark_url(self, path: Any) -> str:
        """The URL of a lake path for Spark to read, recorded as read (every file under a folder)."""
        return str(self._call("lake.spark_url", path=self.path(path))["url"])

    @property
    def fs(self) -> AbstractFileSystem:
        """An fsspec filesystem over the same channel, for pandas/pyarrow (`filesystem=ctx.lake.fs`)."""
        if self._fs is None:
            from conveyor.training.remote_fs import RemoteFileSystem

            self._fs = RemoteFileSystem(self)
        return self._fs
