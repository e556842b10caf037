"""The forms a secret value takes once written somewhere, and which values are too weak to mask at all.

A value is not only printed as it is: JSON and Python's `repr` escape it, URLs percent-encode it, HTTP basic auth
and Kubernetes manifests base64-encode it (at any offset inside a longer blob), XML and HTML escape it, and a
multi-line value (a PEM key) is often printed one line at a time. `written_forms` lists them all, so masking any
text masks every one of them.
"""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

MIN_LENGTH = 8
# Values that appear in ordinary output: masking them would garble it and protect nothing.
COMMON_WORDS = frozenset(
    (
        "password",
        "passw0rd",
        "password1",
        "username",
        "localhost",
        "database",
        "postgres",
        "postgresql",
        "changeme",
        "secret123",
        "administrator",
        "development",
        "production",
        "undefined",
        "infinity",
        "training",
        "evaluate",
        "registry",
        "pipeline",
        "artifacts",
        "approved",
        "released",
        "deployed",
        "conveyor",
        "anonymous",
        "qwertyui",
        "abcdefgh",
    )
)
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def unsafe_reason(value: str) -> str | None:
    """Why `value` cannot be masked safely (too short, a number, a common word, too repetitive), else None."""
    if len(value) < MIN_LENGTH:
        count = f"{len(value)} character" + ("" if len(value) == 1 else "s")
        return f"it is {count} long and conveyor masks values of at least {MIN_LENGTH}"
    stripped = value.strip()
    if stripped.lower() in ("true", "false", "null", "none") or stripped.lower() in COMMON_WORDS:
        return "it is a common word, which would be masked wherever it appears"
    if NUMBER.match(stripped):
        return "it is a number, which would be masked inside metrics and other numbers"
    if len(set(value)) < 3:
        return "it repeats fewer than 3 different characters"
    return None


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 text of `raw` that is the same wherever `raw` sits inside a longer base64-encoded blob.

    At each of the 3 byte offsets, only the characters made wholly of `raw`'s bits are kept.
    """
    cores = set()
    for offset in range(3):
        padded = b"\0" * offset + raw + b"\0\0\0"
        first = -(-8 * offset // 6)
        last = 8 * (offset + len(raw)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(padded).decode("ascii")[first:last]
            if len(core) >= MIN_LENGTH:
                cores.add(core)
    return cores


def _escaped(value: str) -> set[str]:
    forms = {
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        repr(value.encode("utf-8"))[2:-1],
        value.replace("\\", "\\\\").replace('"', '\\"'),
        value.replace("\\", "\\\\").replace("'", "\\'"),
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        html.escape(value, quote=False),
    }
    markup = html.escape(value, quote=False)
    if '"' in value or "'" in value:
        for double in ('"', "&quot;", "&#34;"):
            for single in ("'", "&#x27;", "&apos;", "&#39;"):
                forms.add(markup.replace('"', double).replace("'", single))
    return forms


def written_forms(value: str) -> frozenset[str]:
    """Every form of `value` to mask: as is, escaped (JSON, repr, XML/HTML), URL-encoded, base64 at any offset,
    and each line of a multi-line value."""
    forms = {value} | _escaped(value)
    forms |= _base64_cores(value.encode("utf-8"))
    lines = [line.strip() for line in value.splitlines()]
    if len(lines) > 1:
        for line in lines:
            if len(line) >= MIN_LENGTH:
                forms.add(line)
                forms |= _escaped(line)
        forms.add(value.replace("\r\n", "\n").replace("\n", "\r\n"))
    return frozenset(form for form in forms if len(form) >= MIN_LENGTH)
