"""The secret scan publishing runs: every known value, in every written form, searched for in files, folders,
tar archives (OCI image archives and their gzip layers included) and zip files.

A finding names the file (and the archive member) and the key whose value it holds, never the value.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self, cast

from ahocorasick_rs import BytesAhoCorasick
from isal import isal_zlib

from conveyor.errors import CheckFailed, SecretError
from conveyor.secrets.redaction import WeakSecretError, known_forms, known_secrets

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from conveyor.secrets.base import SecretStore

CHUNK = 1 << 20
TAR_BUFFER = 64 << 10  # tarfile's stream copies what is left of its buffer on every read: small reads, small copies
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
    """Looks for every written form of every known value in the windows it is given (a value across two windows
    of one stream is found), 1 MiB of windows at a time.

    One pass of an Aho-Corasick automaton over each window for all the forms at once (`ahocorasick_rs`: Rust's
    `aho-corasick`, with its SIMD prefilter), every overlapping match reported; one `in` per form reads each window
    once per form (72 forms for 18 values on the census image: matching took 2.6 s against 0.4 s). RE2 through
    pyarrow degrades on a few hundred forms, Python's `re` tries every alternative at each position. A window whose
    form matches names its key."""

    def __init__(self, forms: dict[str, str], keys: dict[str, str | None]) -> None:
        encoded = {form.encode("utf-8"): keys.get(value) or "an unnamed secret" for form, value in forms.items()}
        self.keys = encoded
        self.named = list(encoded.values())
        self.automaton = BytesAhoCorasick(list(encoded)) if encoded else None
        self.longest = max((len(form) for form in encoded), default=0)
        self.batch: list[tuple[str, bytes]] = []
        self.size = 0
        self.found: set[SecretFinding] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.batch, self.size = [], 0

    def read(self, handle: IO[bytes], where: str) -> None:
        """Read `handle` to its end, in windows that overlap by one byte less than the longest form."""
        tail = b""
        while chunk := handle.read(CHUNK):
            window = tail + chunk
            self.batch.append((where, window))
            self.size += len(window)
            if self.size >= CHUNK:
                self._flush()
            tail = window[-(self.longest - 1) :] if self.longest > 1 else b""

    def settle(self) -> set[SecretFinding]:
        """What was found in everything read since the last call."""
        self._flush()
        found, self.found = self.found, set()
        return found

    def _flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.size = self.batch, [], 0
        self.found |= self.match(batch)

    def match(self, batch: list[tuple[str, bytes]]) -> set[SecretFinding]:
        """The findings in one batch of windows."""
        automaton = self.automaton
        if automaton is None:
            return set()
        return {
            SecretFinding(where, self.named[index])
            for where, window in batch
            for index, _start, _end in automaton.find_matches_as_indexes(window, overlapping=True)
        }


def scan_paths(paths: Iterable[Path | str], clean_cache: Path | None = None) -> list[SecretFinding]:
    """Every known secret found under `paths` (files, folders, archives inside them).

    With `clean_cache` (a folder), a tar's content-addressed members (`blobs/sha256/HEX`: an OCI archive's layers)
    that hash to their names and were found clean before by a scan for the same values are not scanned again."""
    forms = known_forms()
    if not forms:
        return []
    findings: set[SecretFinding] = set()
    clean = CleanBlobs(clean_cache, forms) if clean_cache is not None else None
    with _Matcher(forms, known_secrets()) as matcher:
        for path in _files(paths):
            with open(path, "rb") as handle:
                if clean is not None and _is_tar(handle):
                    findings |= _scan_blobs(matcher, handle, str(path), clean)
                else:
                    _scan_stream(matcher, handle, str(path))
        findings |= matcher.settle()
    return sorted(findings)


class CleanBlobs:
    """The blobs a scan for the same known values found clean, kept in `folder` as empty files named
    HMAC(this machine's key, digest + the values' fingerprint): the folder tells nothing of the values, and no
    entry can be made without the key (created once, mode 0600, beside the entries)."""

    def __init__(self, folder: Path, forms: Iterable[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = folder / "key"
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(os.urandom(32))
        self.key = key.read_bytes()
        self.fingerprint = hashlib.sha256("\0".join(sorted(forms)).encode()).digest()
        self.folder = folder

    def _entry(self, digest: str) -> Path:
        return self.folder / hmac.new(self.key, digest.encode() + self.fingerprint, hashlib.sha256).hexdigest()

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and self._entry(digest).is_file()

    def add(self, digest: str) -> None:
        self._entry(digest).touch()


BLOB = re.compile(r"(?:.*/)?blobs/sha256/(?P<hex>[0-9a-f]{64})")


def _is_tar(handle: IO[bytes]) -> bool:
    head = handle.read(512)
    handle.seek(0)
    return len(head) >= 262 and head[257:262] == b"ustar"


def _scan_blobs(matcher: _Matcher, handle: IO[bytes], where: str, clean: CleanBlobs) -> set[SecretFinding]:
    """A tar on disk: each member named by its sha256 whose bytes hash to that name is skipped when `clean` holds
    it, else scanned (and remembered when clean); every other member is scanned."""
    findings: set[SecretFinding] = set()
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            for member in tar:
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is None:
                    continue
                named = BLOB.fullmatch(member.name)
                digest = _sha256(extracted) if named else None
                verified = digest is not None and named is not None and digest == named["hex"]
                if verified and digest in clean:
                    continue
                extracted.seek(0)
                _scan_stream(matcher, extracted, f"{where}!{member.name}", 1)
                found = matcher.settle()
                findings |= found
                if verified and digest is not None and not found:
                    clean.add(digest)
    except SCAN_ERRORS as exc:
        raise Unscannable(where, exc) from None
    return findings


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := handle.read(CHUNK):
        digest.update(block)
    return digest.hexdigest()


def learn_values(stores: Iterable[SecretStore]) -> None:
    """Read every value of `stores` so the scan knows them. A store this step cannot open is skipped, and so is one
    whose names are not only secrets (`env://` with no prefix; the values read from it are known); a value too
    weak to scan for (`WeakSecretError`) is refused, naming its key."""
    for store in stores:
        if not getattr(store, "lists_only_secrets", True):  # env:// with no prefix: its names are every variable
            continue
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


def refuse_published(
    paths: Iterable[Path | str], what: str, stores: Iterable[SecretStore] = (), clean_cache: Path | None = None
) -> int:
    """Fail (exit 1) when a known secret (every value of `stores` included) is in what is about to be published;
    names the file and the key, never the value. Returns how many values were looked for. `clean_cache`: see
    `scan_paths`."""
    learn_values(stores)
    known = len(known_secrets())
    findings = scan_paths(paths, clean_cache)
    if findings:
        shown = "\n  ".join(str(finding) for finding in findings[:20])
        more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
        raise CheckFailed(
            f"refusing to publish {what}: it holds secret values\n  {shown}{more}",
            hint="Remove the secret from what the step writes (or mask it where it is written), then run it again.",
        )
    return known


def _files(paths: Iterable[Path | str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            yield path


class Unscannable(CheckFailed):
    """What was to be scanned cannot be read to its end (a cut or corrupt gzip or tar): nothing unscanned is
    published."""

    def __init__(self, where: str, exc: BaseException) -> None:
        super().__init__(
            f"cannot scan {where} for secrets: {type(exc).__name__}: {exc}",
            hint="The file is cut short or corrupt; build it again. Nothing that cannot be scanned is published.",
        )


class _Chain:
    """A stream read again from its start after its first bytes were peeked at (no seek needed)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast("type[Exception]", isal_zlib.error))
SCAN_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, EOFError, OSError, *INFLATE_ERRORS)  # cut or corrupt
GZIP_WBITS = 16 + 15  # a gzip header and trailer around a deflate stream with a 32 KiB window


class Inflated:
    """A gzip stream inflated as it is read, every member of it (`cat a.gz b.gz` is one gzip stream), with ISA-L
    (about twice zlib's speed on an image's layers); each member's CRC-32 and length are checked. Reads may return
    fewer bytes than asked for; a stream cut before a member's end raises EOFError."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.engine = isal_zlib.decompressobj(GZIP_WBITS)
        self.pending = b""
        self.out = bytearray()

    def read(self, size: int = -1) -> bytes:
        while not self.out:
            data, self.pending = self.pending or self.source.read(CHUNK), b""
            if not data:
                if not self.engine.eof:
                    raise EOFError("the gzip stream ends inside a member")
                return b""
            if self.engine.eof:  # a member ended: zero padding may follow, or another member
                data = data.lstrip(b"\0")
                if not data:
                    continue
                self.engine = isal_zlib.decompressobj(GZIP_WBITS)
            self.out += self.engine.decompress(data)
            if self.engine.eof:
                self.pending = self.engine.unused_data
        if size < 0 or size >= len(self.out):
            data = bytes(self.out)
            self.out.clear()
            return data
        data = bytes(self.out[:size])
        del self.out[:size]
        return data


def _peek(handle: IO[bytes], size: int) -> bytes:
    head = b""
    while len(head) < size and (block := handle.read(size - len(head))):
        head += block
    return head


def _scan_stream(matcher: _Matcher, handle: IO[bytes], where: str, depth: int = 0) -> None:
    """Scan a stream in one pass: gzip is inflated and tar members read as they come (an OCI archive, its layers
    and their files are never copied); only a zip, which needs seeking, is spooled."""
    head = _peek(handle, 512)
    stream = cast("IO[bytes]", _Chain(head, handle))
    if depth < 4 and head.startswith(GZIP_MAGIC):
        try:
            _scan_stream(matcher, cast("IO[bytes]", Inflated(stream)), where, depth + 1)
        except SCAN_ERRORS as exc:
            raise Unscannable(where, exc) from None
        return
    if depth < 4 and len(head) >= 262 and head[257:262] == b"ustar":
        _scan_tar(matcher, stream, where, depth)
        return
    if depth < 4 and head.startswith(ZIP_MAGIC):
        _scan_zip(matcher, _spooled(stream), where, depth)
        return
    matcher.read(stream, where)


def _scan_tar(matcher: _Matcher, handle: IO[bytes], where: str, depth: int) -> None:
    try:
        with tarfile.open(fileobj=handle, mode="r|", bufsize=TAR_BUFFER) as tar:  # a stream, read once
            for member in tar:
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                if extracted is not None:
                    _scan_stream(matcher, extracted, f"{where}!{member.name}", depth + 1)
    except SCAN_ERRORS as exc:
        raise Unscannable(where, exc) from None


def _scan_zip(matcher: _Matcher, handle: IO[bytes], where: str, depth: int) -> None:
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    with archive.open(info) as member:
                        _scan_stream(matcher, member, f"{where}!{info.filename}", depth + 1)
    except zipfile.BadZipFile:
        handle.seek(0)
        matcher.read(handle, where)


def _spooled(source: IO[bytes]) -> IO[bytes]:
    """A seekable copy of a stream (in memory up to 64 MiB, on disk beyond)."""
    copy = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 (handed to the caller, who closes it)
    while block := source.read(CHUNK):
        copy.write(block)
    copy.seek(0)
    return cast("IO[bytes]", copy)
