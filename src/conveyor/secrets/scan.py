"""The secret scan publishing runs: every known value, in every written form, searched for in files, folders,
tar archives (OCI image archives and their gzip layers included) and zip files.

A finding names the file (and the archive member) and the key whose value it holds, never the value.
"""

from __future__ import annotations

import gzip
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from conveyor.errors import CheckFailed, SecretError
from conveyor.secrets.base import SecretStore
from conveyor.secrets.redaction import WeakSecretError, known_forms, known_secrets

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, order=True)
class SecretFinding:
    """A known secret value found at `where` (a path, `archive!member` inside archives); `key` names it."""

    where: str
    key: str

    def __str__(self) -> str:
        return f"{self.where}: the value of {self.key}"


class _Matcher:
    def __init__(self, forms: dict[str, str], keys: dict[str, str | None]) -> None:
        encoded = {form.encode("utf-8"): keys.get(value) or "an unnamed secret" for form, value in forms.items()}
        self.keys = encoded
        self.longest = max((len(form) for form in encoded), default=0)
        ordered = sorted(encoded, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(form) for form in ordered)) if ordered else None

    def keys_in(self, handle: IO[bytes]) -> set[str]:
        """The keys whose values occur in the stream (read in chunks; a value across two chunks is found)."""
        found: set[str] = set()
        if self.pattern is None:
            return found
        tail = b""
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            found |= {self.keys[m.group(0)] for m in self.pattern.finditer(window)}
            tail = window[-(self.longest - 1) :] if self.longest > 1 else b""
        return found


def scan_paths(paths: Iterable[Path | str]) -> list[SecretFinding]:
    """Every known secret found under `paths` (files, folders, archives inside them)."""
    matcher = _Matcher(known_forms(), known_secrets())
    findings: set[SecretFinding] = set()
    if matcher.pattern is None:
        return []
    for path in _files(paths):
        with open(path, "rb") as handle:
            findings |= set(_scan_stream(matcher, handle, str(path)))
    return sorted(findings)


def learn_values(stores: Iterable[SecretStore]) -> None:
    """Read every value of `stores` so the scan knows them. A store this step cannot open is skipped; a value too
    weak to scan for (`WeakSecretError`) is refused, naming its key."""
    for store in stores:
        try:
            names = store.names()
        except SecretError:
            continue
        for key in names:
            try:
                store.get(key)
            except WeakSecretError:
                raise
            except SecretError:
                continue


def refuse_published(paths: Iterable[Path | str], what: str, stores: Iterable[SecretStore] = ()) -> None:
    """Fail (exit 1) when a known secret (every value of `stores` included) is in what is about to be published;
    names the file and the key, never the value."""
    learn_values(stores)
    findings = scan_paths(paths)
    if findings:
        shown = "\n  ".join(str(finding) for finding in findings[:20])
        more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
        raise CheckFailed(
            f"refusing to publish {what}: it holds secret values\n  {shown}{more}",
            hint="Remove the secret from what the step writes (or mask it where it is written), then run it again.",
        )


def _files(paths: Iterable[Path | str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            yield path


def _scan_stream(matcher: _Matcher, handle: IO[bytes], where: str, depth: int = 0) -> Iterator[SecretFinding]:
    head = handle.read(512)
    handle.seek(0)
    if depth < 4 and head.startswith(GZIP_MAGIC):
        with gzip.GzipFile(fileobj=handle, mode="rb") as inner:
            data = _spooled(cast(IO[bytes], inner))
        yield from _scan_stream(matcher, data, where, depth + 1)
        return
    if depth < 4 and len(head) >= 262 and head[257:262] == b"ustar":
        yield from _scan_tar(matcher, handle, where, depth)
        return
    if depth < 4 and head.startswith(ZIP_MAGIC):
        yield from _scan_zip(matcher, handle, where, depth)
        return
    for key in matcher.keys_in(handle):
        yield SecretFinding(where, key)


def _scan_tar(matcher: _Matcher, handle: IO[bytes], where: str, depth: int) -> Iterator[SecretFinding]:
    try:
        with tarfile.open(fileobj=handle) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                if extracted is not None:
                    data = _spooled(extracted)
                    yield from _scan_stream(matcher, data, f"{where}!{member.name}", depth + 1)
    except tarfile.TarError:
        handle.seek(0)
        for key in matcher.keys_in(handle):
            yield SecretFinding(where, key)


def _scan_zip(matcher: _Matcher, handle: IO[bytes], where: str, depth: int) -> Iterator[SecretFinding]:
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    with archive.open(info) as member:
                        data = _spooled(member)
                    yield from _scan_stream(matcher, data, f"{where}!{info.filename}", depth + 1)
    except zipfile.BadZipFile:
        handle.seek(0)
        for key in matcher.keys_in(handle):
            yield SecretFinding(where, key)


def _spooled(source: IO[bytes]) -> IO[bytes]:
    """A seekable copy of a stream (in memory up to 64 MiB, on disk beyond)."""
    copy = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 (handed to the caller, who closes it)
    while block := source.read(CHUNK):
        copy.write(block)
    copy.seek(0)
    return cast(IO[bytes], copy)
