"""Which lake files were read, and the sha256 of each: the model's `data_digest`.

A file opened for reading is hashed from the bytes as they are read. When a reader skips ahead or stops early,
closing the file reads the rest from where hashing stopped, so the digest is always of the whole file. A file that
was never closed (or whose handle could not seek back) is hashed by streaming it again when a digest is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class LakeRead:
    """One file read from the lake: its path inside the lake and the sha256 hex of its content."""

    path: str
    sha256: str


def sha256_of_stream(handle: IO[bytes], sha: Any | None = None) -> str:
    """The sha256 hex of everything left in `handle`, continuing `sha` when given."""
    sha = sha or hashlib.sha256()
    while chunk := handle.read(CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


class ReadLog:
    """The files read so far; `pending` ones are hashed by `rehash(path)` when a digest is asked for."""

    def __init__(self, rehash: Callable[[str], str]) -> None:
        self._rehash = rehash
        self._digests: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def opened(self, path: str) -> None:
        """`path` was opened for reading; its digest follows when it is closed."""
        with self._lock:
            self._digests.setdefault(path, None)

    def record(self, path: str, sha256: str | None) -> None:
        with self._lock:
            self._digests[path] = sha256

    def reads(self) -> list[LakeRead]:
        """Every file read, sorted by path, each with the sha256 of its content."""
        with self._lock:
            pending = [path for path, digest in self._digests.items() if digest is None]
        for path in pending:
            self.record(path, self._rehash(path))
        with self._lock:
            return sorted(LakeRead(path, digest) for path, digest in self._digests.items() if digest)

    def data_digest(self) -> str:
        """`sha256:<hex>` over sorted `path\\tsha256` lines (of the empty text when nothing was read)."""
        text = "".join(f"{read.path}\t{read.sha256}\n" for read in self.reads())
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class HashingReader(io.BufferedIOBase):
    """A binary file opened for reading that hashes its content as it is read and records it when closed."""

    def __init__(self, inner: IO[bytes], path: str, log: ReadLog) -> None:
        super().__init__()
        self._inner = inner
        self._path = path
        self._log = log
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) of the file are in _sha
        self._done = False
        log.opened(path)

    def _position(self) -> int | None:
        try:
            return self._inner.tell()
        except (OSError, ValueError, AttributeError):
            return None

    def _consumed(self, start: int | None, data: bytes | memoryview) -> None:
        if start is None:
            start = self._hashed  # an unseekable stream is read in order
        end = start + len(data)
        if start <= self._hashed < end:
            self._sha.update(data[self._hashed - start :])
            self._hashed = end

    def read(self, size: int | None = -1) -> bytes:
        start = self._position()
        data = self._inner.read(-1 if size is None else size)
        self._consumed(start, data)
        return data

    def read1(self, size: int = -1) -> bytes:
        start = self._position()
        reader = getattr(self._inner, "read1", self._inner.read)
        data = reader(size)
        self._consumed(start, data)
        return data

    def readinto(self, buffer: Any) -> int:
        start = self._position()
        count: int | None = getattr(self._inner, "readinto")(buffer)  # noqa: B009  (IO declares no readinto)
        if count:
            self._consumed(start, memoryview(buffer).cast("B")[:count])
        return count or 0

    def readinto1(self, buffer: Any) -> int:
        return self.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        start = self._position()
        data = self._inner.readline(-1 if size is None else size)
        self._consumed(start, data)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def seekable(self) -> bool:
        return bool(getattr(self._inner, "seekable", lambda: False)())

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return bool(getattr(self._inner, "closed", False))

    def _finish(self) -> None:
        """Hash what was not read yet, from where hashing stopped; record None when that cannot be done."""
        if self._done:
            return
        self._done = True
        try:
            self._inner.seek(self._hashed)
            digest: str | None = sha256_of_stream(self._inner, self._sha)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            digest = None
        self._log.record(self._path, digest)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._finish()
        finally:
            self._inner.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
