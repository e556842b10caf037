"""`ctx.lake.fs`: an fsspec filesystem over the training channel, for libraries that take one (pandas, pyarrow).

It has no inner filesystem and no credentials: every call is a `RemoteLake` call, so every read is recorded.
"""

from __future__ import annotations

from typing import Any, Protocol

from fsspec import AbstractFileSystem


class LakeCalls(Protocol):
    """What the filesystem asks of the lake (`conveyor.training.remote_lake.RemoteLake` answers it)."""

    def ls(self, path: Any = "", detail: bool = False) -> list[Any]: ...

    def info(self, path: Any) -> dict[str, Any]: ...

    def exists(self, path: Any) -> bool: ...

    def open(
        self,
        path: Any,
        mode: str = "rb",
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        compression: str | None = None,
    ) -> Any: ...

    def rm(self, path: Any, recursive: bool = False) -> None: ...

    def makedirs(self, path: Any) -> None: ...


class RemoteFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Paths are lake paths (relative to the lake's root); reading and writing go through the lake's process."""

    protocol = "conveyor-lake"
    cachable = False

    def __init__(self, lake: LakeCalls, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lake = lake

    def _strip_protocol(self, path: Any) -> Any:
        if isinstance(path, list):
            return [self._strip_protocol(p) for p in path]
        text = str(path)
        return text.removeprefix("conveyor-lake://").rstrip("/")

    def ls(self, path: str = "", detail: bool = True, **kwargs: Any) -> list[Any]:
        return self._lake.ls(self._strip_protocol(path), detail=detail)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._lake.info(self._strip_protocol(path))

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self._lake.exists(self._strip_protocol(path))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        with self._lake.open(self._strip_protocol(path), "rb") as handle:
            if start:
                handle.seek(start if start >= 0 else max(0, self.size(path) + start))
            if end is None:
                return bytes(handle.read())
            begin = handle.tell()
            stop = end if end >= 0 else int(self.size(path)) + end
            return bytes(handle.read(max(0, stop - begin)))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        return self._lake.open(self._strip_protocol(path), mode)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        text = {k: kwargs[k] for k in ("encoding", "errors", "newline") if k in kwargs}
        return self._lake.open(self._strip_protocol(path), mode, compression=kwargs.get("compression"), **text)

    def rm_file(self, path: str) -> None:
        self._lake.rm(self._strip_protocol(path))

    def rm(self, path: str, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._lake.rm(self._strip_protocol(path), recursive=recursive)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._lake.makedirs(self._strip_protocol(path))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._lake.makedirs(self._strip_protocol(path))
