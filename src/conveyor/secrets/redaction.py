"""Masking of known secret values in everything conveyor prints, logs or writes.

Every value a `SecretStore` hands out is registered here. `redact()` replaces each registered value, in each
of its written forms (escaped, encoded, line by line: see `encodings`), with `***`. `install()` puts a filter
on the root logger and wraps `sys.stdout`/`sys.stderr` so that nothing printed in this process, by conveyor or
by a user's script, carries a registered value.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from conveyor.errors import SecretError
from conveyor.secrets.encodings import MIN_LENGTH, unsafe_reason, written_forms

if TYPE_CHECKING:
    from collections.abc import Callable

MASK = "***"

_lock = threading.Lock()
_secrets: dict[str, str | None] = {}  # value -> the key it was read under, when known
_public: set[str] = set()
_forms: dict[str, str] = {}  # every written form of every value -> that value
_pattern: re.Pattern[str] | None = None


def register_secret(value: str, key: str | None = None, *, store: str | None = None) -> None:
    """Remember `value` as secret: from now on `redact` masks it in every written form.

    A value too short or too common to mask safely is refused with `SecretError` naming `key` and `store`:
    it is never left silently unmasked.
    """
    global _pattern
    if not isinstance(value, str) or value in _secrets:
        return
    reason = unsafe_reason(value)
    if reason is not None:
        raise weak_secret(key, store, reason)
    with _lock:
        _secrets[value] = key
        for form in written_forms(value):
            _forms.setdefault(form, value)
        _pattern = _compile()


class WeakSecretError(SecretError):
    """A value too short or too common to mask safely: refused wherever it is read, never handed out."""


def weak_secret(key: str | None, store: str | None, reason: str) -> WeakSecretError:
    """The error for a value that cannot be masked safely: names the key and the store, never the value."""
    what = f"secret {key!r}" if key else "a secret value"
    where = f" in store {store}" if store else ""
    return WeakSecretError(
        f"{what}{where} cannot be masked safely: {reason}",
        hint=(
            f"Give it a longer, random value (at least {MIN_LENGTH} characters"
            + (f"): conveyor secrets set {key} --env ENV" if key else ")")
            + ". Values published by design (state, created_by) are exempt."
        ),
    )


def declare_public(value: str) -> None:
    """Mark a value as published by design (e.g. the `state` tag); a value also held as a secret stays masked."""
    with _lock:
        _public.add(value)


def remember(value: str, key: str, public: bool) -> None:
    """What a training child does with a value it was given: declared public (`public`), else masked as secret."""
    if public:
        declare_public(value)
    else:
        register_secret(value, key)


def is_public(value: str) -> bool:
    return value in _public and value not in _secrets


def _compile() -> re.Pattern[str] | None:
    forms = sorted(_forms, key=len, reverse=True)
    return re.compile("|".join(re.escape(form) for form in forms)) if forms else None


def known_values() -> frozenset[str]:
    """The values currently masked (for handing to a child process's redactor, never for printing)."""
    return frozenset(_secrets)


def known_secrets() -> dict[str, str | None]:
    """Each masked value with the key it was read under (for scans that name the key, never the value)."""
    return dict(_secrets)


def known_forms() -> dict[str, str]:
    """Every written form of every masked value, mapped to its value."""
    return dict(_forms)


def redact(text: str, mask: str = MASK) -> str:
    """`text` with every written form of every registered secret value replaced by `mask` (`***`)."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(mask, text)


def forget_all() -> None:
    """Drop every registered value (tests use this to start clean)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _public.clear()
        _forms.clear()
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
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


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
