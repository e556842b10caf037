"""Masking where values are stored, not only where they are printed: one function per kind of write boundary.

| boundary | function |
| --- | --- |
| text: error messages, log lines, a step's output | `mask_text` |
| JSON documents: manifest.json, build.json, attestation payloads, ledger events, `--json` output | `mask_json` |
| MLflow run data: params, tags, metric names | `mask_fields` |
| report files: JUnit XML, Cobertura XML, coverage HTML | `mask_report_files` |

Each masks every written form of every registered value (see `encodings`). `mask_json` masks inside the
strings of the document, so its output is still the same JSON shape (never text-substituted JSON, which a value
like `true` would break). Publishing runs `refuse_published` (in `scan`) on top of these.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar, cast

from conveyor.secrets.redaction import MASK, redact

T = TypeVar("T")
NAME_MASK = "MASKED"  # in names that allow only letters, digits and _-.:/ (MLflow params, metrics, tags)
REPORT_SUFFIXES = (".xml", ".html", ".htm", ".txt", ".json", ".js", ".css", ".svg")


def mask_text(text: str) -> str:
    """`text` with every secret masked: for error messages, log lines and a command's output."""
    return redact(text)


def mask_json(document: T) -> T:
    """A JSON-shaped document (dicts, lists, strings, numbers) with every string, key or value, masked.

    Numbers, booleans and None pass as they are, so the result serialises to valid JSON of the same shape.
    """
    return cast("T", _mask(document))


def _mask(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {(redact(k) if isinstance(k, str) else k): _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def mask_fields(fields: Mapping[str, object]) -> dict[str, object]:
    """MLflow params, tags or metrics with their names and text values masked (numbers pass as they are).

    Names are masked with `MASKED` (MLflow names cannot hold `*`). Two names that mask to the same text keep
    apart by a numbered suffix, so no value is silently dropped.
    """
    masked: dict[str, object] = {}
    for name, value in fields.items():
        key = redact(str(name), NAME_MASK)
        if key in masked and key != name:
            number = 2
            while f"{key}-{number}" in masked:
                number += 1
            key = f"{key}-{number}"
        masked[key] = redact(value) if isinstance(value, str) else value
    return masked


def mask_report_files(paths: Iterable[Path]) -> list[Path]:
    """Rewrite text reports (files, or every report file under a folder) with secrets masked; returns the files
    that changed. XML and HTML escaped forms are masked too (see `encodings`)."""
    changed = []
    for path in _files(paths):
        if path.suffix.lower() not in REPORT_SUFFIXES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        masked = redact(text)
        if masked != text:
            _replace(path, masked)
            changed.append(path)
    return changed


def _files(paths: Iterable[Path]) -> list[Path]:
    found = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            found.append(path)
    return found


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.masked")
    temporary.write_text(text, encoding="utf-8")
    os.chmod(temporary, path.stat().st_mode & 0o777)
    os.replace(temporary, path)


__all__ = ["MASK", "mask_fields", "mask_json", "mask_report_files", "mask_text"]
