"""Masking of known secret values in everything conveyor prints, logs or writes.

Every value a `SecretStore` hands out is registered here. `redact()` replaces each registered value with
`***`; `install()` puts a filter on the root logger and wraps `sys.stdout`/`sys.stderr` so that nothing printed
in this process, by conveyor or by a user's script, carries a registered value.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

MASK = "***"
# Values shorter than this are not masked: masking "ab" everywhere would destroy output and protect nothing.
MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_public: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Remember `value` as secret: from now on `redact` masks it."""
    global _pattern
    if not isinstance(value, str) or len(value) < MIN_LENGTH or value in _values:
        return
    with _lock:
        _values.add(value)
        _pattern = _compile()


def declare_public(value: str) -> None:
    """Mark a value that came from a secret store as published by design (e.g. the `state` tag)."""
    global _pattern
    with _lock:
        _public.add(value)
        _pattern = _compile()


def _compile() -> re.Pattern[str] | None:
    values = sorted(_values - _public, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def known_values() -> frozenset[str]:
    """The values currently masked (for handing to a child process's redactor, never for printing)."""
    return frozenset(_values - _public)


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by `***`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def forget_all() -> None:
    """Drop every registered value (tests use this to start clean)."""
    global _pattern
    with _lock:
        _values.clear()
        _public.clear()
        _pattern = None


class RedactingFilter(logging.Filter):
    """A logging filter that masks secret values in the message, its arguments and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both, masked, as logging would show them
            message = f"{record.msg} {record.args!r}"
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            message = f"{message}\n{formatted}"
            record.exc_info = None
            record.exc_text = None
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True


def _redact_argument(value: object) -> object:
    """A log argument with secrets masked; an object whose text holds a secret is replaced by that text, masked."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float):
        return value
    try:
        text = str(value)
    except Exception:
        return value
    masked = redact(text)
    return masked if masked != text else value


class RedactingRecordFactory:
    """A `LogRecord` factory that masks every record of every logger as it is made.

    A filter on the root logger never sees records of other loggers, and handlers added later carry no
    filter; this covers both. String arguments are masked one by one so that formatters which read
    `record.args` (e.g. access logs) keep working; the traceback is formatted and masked up front.
    """

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        if _pattern is None:
            return record
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_argument(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_argument(v) for k, v in record.args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record


class RedactingStream(io.TextIOBase):
    """A text stream that masks secret values before they reach the wrapped stream.

    Text is passed on a line at a time (and on `flush()`), so a value written in pieces, as a child
    process's output copied in chunks may be, is still masked whole.
    """

    MAX_PENDING = 64 * 1024

    def __init__(self, wrapped: TextIO) -> None:
        self._wrapped = wrapped
        self._pending = ""
        self._write_lock = threading.RLock()  # re-entrant: the wrapped stream may log back into us

    @property
    def wrapped(self) -> TextIO:
        return self._wrapped

    def write(self, text: str) -> int:
        with self._write_lock:
            self._pending += text
            end = max(self._pending.rfind("\n"), self._pending.rfind("\r")) + 1
            if len(self._pending) > self.MAX_PENDING:
                end = len(self._pending)
            if end:
                ready, self._pending = self._pending[:end], self._pending[end:]
                self._wrapped.write(redact(ready))
        return len(text)

    def flush(self) -> None:
        with self._write_lock:
            if self._pending:
                ready, self._pending = self._pending, ""
                self._wrapped.write(redact(ready))
        self._wrapped.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._wrapped.isatty()

    def fileno(self) -> int:
        return self._wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._wrapped, "encoding", None) or "utf-8"


def install() -> None:
    """Mask secrets in this process's logging and standard streams (idempotent)."""
    if not isinstance(logging.getLogRecordFactory(), RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(logging.getLogRecordFactory()))
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]


def uninstall() -> None:
    """Undo `install()`: the standard streams, the record factory and the root logger's filters."""
    factory = logging.getLogRecordFactory()
    if isinstance(factory, RedactingRecordFactory):
        logging.setLogRecordFactory(factory.wrapped)
    root = logging.getLogger()
    for owner in [root, *root.handlers]:
        for f in [f for f in owner.filters if isinstance(f, RedactingFilter)]:
            owner.removeFilter(f)
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, RedactingStream):
            stream.flush()
            setattr(sys, name, stream.wrapped)
