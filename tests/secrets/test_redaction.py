"""Redaction: every value a store handed out is masked in text, logs, streams and exception output."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.secrets import redaction
from conveyor.secrets.redaction import (
    RedactingFilter,
    RedactingStream,
    declare_public,
    known_values,
    redact,
    register_secret,
)

SECRET = "s3cr3t-Pa55word"


@contextmanager
def installed() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """`install()` over two in-memory standard streams, undone afterwards.

    Entered inside a test body: pytest's capture resets `sys.stdout` between fixture setup and the test.
    """
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        redaction.install()
        yield out, err
    finally:
        redaction.uninstall()
        sys.stdout, sys.stderr = saved


def test_redact_masks_longest_values_first() -> None:
    register_secret("k3y-abcd")
    register_secret("k3y-abcd-efgh")
    assert redact("k3y-abcd-efgh k3y-abcd xyz") == "*** *** xyz"
    assert known_values() == frozenset({"k3y-abcd", "k3y-abcd-efgh"})


def test_values_with_regex_characters_are_masked_literally() -> None:
    register_secret("a.b*c+(d)")
    assert redact("a.b*c+(d) aXbbc+(d)") == "*** aXbbc+(d)"


def test_public_values_stay_visible_unless_also_secret() -> None:
    declare_public("production-eu")
    register_secret(SECRET)
    assert redact(f"state=production-eu pw={SECRET}") == "state=production-eu pw=***"
    declare_public(SECRET)  # a value some key holds as a secret stays masked
    assert redact(SECRET) == "***"


def test_nothing_registered_leaves_text_alone() -> None:
    assert redact(f"pw={SECRET}") == f"pw={SECRET}"


def test_logging_filter_masks_message_arguments_and_traceback() -> None:
    register_secret(SECRET)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("conveyor.test.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token is %s", SECRET)
        try:
            raise RuntimeError(f"could not log in with {SECRET}")
        except RuntimeError:
            logger.exception("login failed")
        logger.warning("bad format %d", SECRET)  # arguments that do not fit: no crash, still masked
    finally:
        logger.removeHandler(handler)
    text = buffer.getvalue()
    assert SECRET not in text
    assert "token is ***" in text
    assert "RuntimeError: could not log in with ***" in text
    assert "bad format" in text


def test_install_masks_records_of_any_logger_and_handler() -> None:
    register_secret(SECRET)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # added after install(): carries no filter of its own
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("conveyor.test.child")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with installed():
            logger.error("connecting with %s to %s:%d", SECRET, "lake.example", 443)
            try:
                raise ValueError(SECRET)
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = buffer.getvalue()
    assert SECRET not in text
    assert "connecting with *** to lake.example:443" in text
    assert "ValueError: ***" in text


def test_install_keeps_argument_tuples_for_formatters_that_read_them() -> None:
    register_secret(SECRET)
    with installed():
        record = logging.getLogger("uvicorn.access").makeRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s" %d',
            ("127.0.0.1", "GET", f"/x?k={SECRET}", 200),
            None,
        )
        client, method, path, status = record.args  # what an access-log formatter does
    assert (client, method, path, status) == ("127.0.0.1", "GET", "/x?k=***", 200)


def test_install_wraps_the_standard_streams() -> None:
    register_secret(SECRET)
    with installed() as (out, err):
        print(f"password: {SECRET}")
        print(SECRET, file=sys.stderr)
        traceback.print_exception(RuntimeError(f"boom {SECRET}"))
        sys.stdout.flush()
        sys.stderr.flush()
        redaction.install()  # idempotent: no second wrapper, no second filter
        assert not isinstance(sys.stdout.wrapped, RedactingStream)  # type: ignore[union-attr]
        assert sum(isinstance(f, RedactingFilter) for f in logging.getLogger().filters) == 1
    assert out.getvalue() == "password: ***\n"
    assert SECRET not in err.getvalue() and "RuntimeError: boom ***" in err.getvalue()


def test_uninstall_restores_streams_and_logging() -> None:
    factory = logging.getLogRecordFactory()
    with installed() as (out, _):
        assert isinstance(sys.stdout, RedactingStream)
        redaction.uninstall()
        assert sys.stdout is out
    assert logging.getLogRecordFactory() is factory
    assert not any(isinstance(f, RedactingFilter) for f in logging.getLogger().filters)


def test_stream_masks_a_value_written_in_pieces() -> None:
    register_secret(SECRET)
    target = io.StringIO()
    stream = RedactingStream(target)
    for piece in ("log: s3cr", "3t-Pa5", "5word done\nnext line ", SECRET):
        stream.write(piece)
    assert target.getvalue() == "log: *** done\n"
    stream.flush()
    assert target.getvalue() == "log: *** done\nnext line ***"
    assert stream.writable() and stream.encoding


def test_stream_passes_carriage_return_lines_at_once() -> None:
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("progress 50%\r")
    assert target.getvalue() == "progress 50%\r"


def test_a_process_with_install_never_prints_the_value() -> None:
    """The real standard streams of a child: print, logging and an uncaught exception's traceback."""
    script = textwrap.dedent(
        f"""
        import logging
        from conveyor.secrets.redaction import install, register_secret
        logging.basicConfig(level=logging.INFO)
        install()
        register_secret({SECRET!r})
        print("value:", {SECRET!r})
        logging.getLogger("train").info("using %s", {SECRET!r})
        print("last words without newline", {SECRET[:6]!r}, end="")
        print({SECRET[6:]!r}, end="")
        raise SystemError("failed with " + {SECRET!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == "value: ***\nlast words without newline ***"
    assert "INFO:train:using ***" in result.stderr
    assert "SystemError: failed with ***" in result.stderr
    assert SECRET not in result.stdout + result.stderr
