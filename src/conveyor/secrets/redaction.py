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
from typing import TextIO

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
        message = record.getMessage()
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            message = f"{message}\n{formatted}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True


class RedactingStream(io.TextIOBase):
    """A text stream that masks secret values before they reach the wrapped stream."""

    def __init__(self, wrapped: TextIO) -> None:
        self._wrapped = wrapped

    def write(self, text: str) -> int:
        self._wrapped.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._wrapped.flush()

    def isatty(self) -> bool:
        return self._wrapped.isatty()

    def fileno(self) -> int:
        return self._wrapped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._wrapped, "encoding", "utf-8")


def install() -> None:
    """Mask secrets in this process's logging and standard streams (idempotent)."""
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
        for handler in root.handlers:
            handler.addFilter(RedactingFilter())
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
