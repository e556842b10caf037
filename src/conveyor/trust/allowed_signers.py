"""The OpenSSH `allowed_signers` file, read as `ssh-keygen -Y verify` reads it (ssh-keygen(1), ALLOWED SIGNERS).

One line per key: `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`. PRINCIPALS is a comma-separated list of
patterns (`*` and `?` wildcards, `!` negates; quote it if it holds spaces). OPTIONS are comma-separated:
`namespaces="conveyor,git"` (the namespaces this key may sign in), `valid-after="20260101"` and
`valid-before="20261231Z"` (YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]; local time unless suffixed with Z), and
`cert-authority`, which conveyor refuses: an identity is a listed key, not any key a CA signed.

conveyor needs a name, so the principal of a key is the first plain name (no wildcard, no `!`) on its line.

Validity is OpenSSH's: a key is valid at or after valid-after and at or before valid-before, checked at the time
of the signature (conveyor: the time of the ledger event, as git checks a commit's time with `-Overify-time`).
A key outside its window is refused with `KeyNotValid` (exit 1), naming its principal and the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.trust.errors import AllowedSignersError, MalformedSignature, UnknownSigner, WrongNamespace
from conveyor.trust.publickey import KEY_TYPES, PublicKey

if TYPE_CHECKING:
    from collections.abc import Iterable

OTHER_KEY_TYPES = ("ssh-dss",)
TIME_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
LINE_FORMAT = "NAME ssh-ed25519 AAAA… (the content of a .pub file after the name)"


class KeyNotValid(UnknownSigner):
    """The key is listed, but not valid at the time of the signature (valid-after / valid-before); exit 1."""


def match_pattern(value: str, pattern: str) -> bool:
    """OpenSSH's `match_pattern`: `*` any run of characters, `?` one character, everything else literal."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, value, flags=re.DOTALL) is not None


def match_pattern_list(value: str, patterns: Iterable[str]) -> bool:
    """OpenSSH's `match_pattern_list`: true when a pattern matches and no negated (`!`) pattern does."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if match_pattern(value, pattern[1:]):
                return False
        elif match_pattern(value, pattern):
            matched = True
    return matched


def is_name(pattern: str) -> bool:
    """A principal pattern that is a plain name (it names one principal)."""
    return bool(pattern) and not pattern.startswith("!") and "*" not in pattern and "?" not in pattern


@dataclass(frozen=True)
class AllowedSigner:
    """One line of allowed_signers."""

    principals: tuple[str, ...]
    key: PublicKey
    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    line: int = 0

    @property
    def name(self) -> str | None:
        """The principal this key acts as: the first plain name on the line."""
        return next((p for p in self.principals if is_name(p)), None)

    def allows_namespace(self, namespace: str) -> bool:
        return self.namespaces is None or match_pattern_list(namespace, self.namespaces)

    @property
    def options(self) -> str:
        """The validity options in a form every machine reads alike (UTC, `Z`): `valid-after="…Z",valid-before="…Z"`
        ("" when the key has no window). What the release policy records beside the key."""
        parts = [
            f'{name}="{moment.astimezone(UTC):%Y%m%d%H%M%S}Z"'
            for name, moment in (("valid-after", self.valid_after), ("valid-before", self.valid_before))
            if moment is not None
        ]
        return ",".join(parts)

    @property
    def window(self) -> str:
        """The validity window for messages: `valid-after 2026-01-01 00:00:00Z, valid-before …`."""
        parts = [
            f"{name} {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
            for name, moment in (("valid-after", self.valid_after), ("valid-before", self.valid_before))
            if moment is not None
        ]
        return ", ".join(parts) or "always valid"

    def valid_at(self, moment: datetime) -> bool:
        if self.valid_after is not None and moment < self.valid_after:
            return False
        return not (self.valid_before is not None and moment > self.valid_before)


class AllowedSigners:
    """The keys that may sign, and the principal each one names."""

    def __init__(self, entries: Iterable[AllowedSigner], source: str = "allowed_signers") -> None:
        self.entries = tuple(entries)
        self.source = source

    @classmethod
    def load(cls, path: Path | str) -> AllowedSigners:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise AllowedSignersError(
                f"the allowed_signers file {path} does not exist",
                hint=f"Create it with one line per person or CI key, `{LINE_FORMAT}`, commit it beside "
                "conveyor.toml, or point [trust] allowed_signers at it.",
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise AllowedSignersError(f"cannot read the allowed_signers file {path}: {error}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "allowed_signers") -> AllowedSigners:
        entries = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                entries.append(_parse_line(line, number, source))
        return cls(entries, source)

    @property
    def principals(self) -> set[str]:
        """Every plain principal name in the file."""
        return {p for entry in self.entries for p in entry.principals if is_name(p)}

    def principal_of(self, public_key: PublicKey | str) -> str | None:
        """The principal a key acts as (the first plain name on its first line), or None when it is not listed."""
        key = PublicKey.parse(public_key) if isinstance(public_key, str) else public_key
        return next((entry.name for entry in self.entries if entry.key == key and entry.name), None)

    def keys_of(self, principal: str) -> list[PublicKey]:
        """The keys listed for a principal (lines whose patterns match the name)."""
        return [entry.key for entry in self.entries if match_pattern_list(principal, entry.principals)]

    def signer(self, key: PublicKey, namespace: str, at: datetime | None = None) -> str:
        """The principal of `key` for a signature in `namespace` at `at` (default now); UnknownSigner or
        WrongNamespace naming why when there is none."""
        moment = at or datetime.now(UTC)
        lines = [entry for entry in self.entries if entry.key == key]
        if not lines:
            raise UnknownSigner(
                f"the signing key {key} is not in {self.source}",
                hint="Only keys listed in allowed_signers name a signer; add the signer's public key there "
                f"(`{LINE_FORMAT}`) and commit it.",
            )
        in_namespace = [entry for entry in lines if entry.allows_namespace(namespace)]
        if not in_namespace:
            allowed = ", ".join(sorted({n for entry in lines for n in entry.namespaces or ()}))
            raise WrongNamespace(
                f"the key {key} may sign only for {allowed} in {self.source} (line {lines[0].line}), not {namespace}",
                hint=f'Add {namespace} to its namespaces="..." option.',
            )
        valid = [entry for entry in in_namespace if entry.valid_at(moment)]
        if not valid:
            entry = in_namespace[0]
            when = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"
            raise KeyNotValid(
                f"{entry.name or ','.join(entry.principals)}'s key {key.fingerprint} is not valid at {when} "
                f"({self.source} line {entry.line}: {entry.window})",
                hint="Sign with a current key; a renewed window is a change of policy (allowed_signers, by "
                "review, then conveyor release policy propose).",
            )
        named = next((entry.name for entry in valid if entry.name), None)
        if named is None:
            raise UnknownSigner(
                f"the key {key} is listed in {self.source} (line {valid[0].line}) only under patterns "
                f"({','.join(valid[0].principals)}), which name no one",
                hint=f"Put a plain name first on that line: `{LINE_FORMAT}`.",
            )
        return named


def _fail(source: str, number: int, message: str, hint: str | None = None) -> AllowedSignersError:
    return AllowedSignersError(
        f"{source} line {number}: {message}", hint=hint or f"Each line reads `{LINE_FORMAT}`; see ssh-keygen(1)."
    )


def _next_field(text: str) -> tuple[str, str]:
    """The first whitespace-delimited field of `text` (a double-quoted field may hold spaces) and the rest."""
    if text.startswith('"'):
        end = text.find('"', 1)
        if end < 0:
            raise ValueError("a quote is not closed")
        return text[1:end], text[end + 1 :].lstrip()
    parts = text.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _is_key_type(token: str) -> bool:
    return token in KEY_TYPES or token in OTHER_KEY_TYPES or token.endswith("@openssh.com")


def _split_options(text: str) -> tuple[list[tuple[str, str | None]], str]:
    """`name,name="quoted value",…` up to the first unquoted blank, and the rest of the line."""
    options: list[tuple[str, str | None]] = []
    i = 0
    while True:
        match = re.match(r"[A-Za-z0-9_-]+", text[i:])
        if not match:
            raise ValueError(f"an option name is expected at {text[i : i + 20]!r}")
        name, i = match.group(0), i + match.end()
        value: str | None = None
        if text[i : i + 1] == "=":
            if text[i + 1 : i + 2] != '"':
                raise ValueError(f'the value of {name} must be in double quotes: {name}="..."')
            end = text.find('"', i + 2)
            if end < 0:
                raise ValueError(f"the value of {name} has no closing quote")
            value, i = text[i + 2 : end], end + 1
        options.append((name.lower(), value))
        if text[i : i + 1] != ",":
            return options, text[i:].lstrip()
        i += 1


def _parse_time(source: str, number: int, name: str, value: str) -> datetime:
    utc = value.endswith(("Z", "z"))
    digits = value[:-1] if utc else value
    pattern = TIME_FORMATS.get(len(digits))
    try:
        if pattern is None or not digits.isdigit():
            raise ValueError(value)
        moment = datetime.strptime(digits, pattern)
    except ValueError:
        raise _fail(
            source,
            number,
            f'{name}="{value}" is not a time',
            hint="Write YYYYMMDD or YYYYMMDDHHMM[SS], with a trailing Z for UTC (else local time).",
        ) from None
    return moment.replace(tzinfo=UTC) if utc else moment.astimezone()


def _parse_line(line: str, number: int, source: str) -> AllowedSigner:
    try:
        principal_text, rest = _next_field(line)
    except ValueError as error:
        raise _fail(source, number, str(error)) from None
    principals = tuple(p for p in principal_text.split(",") if p)
    if not principals or not rest:
        raise _fail(source, number, "a line needs principals and a public key")
    options: list[tuple[str, str | None]] = []
    if not _is_key_type(rest.split(None, 1)[0]):
        try:
            options, rest = _split_options(rest)
        except ValueError as error:
            raise _fail(source, number, f"cannot read the options: {error}") from None
    namespaces: tuple[str, ...] | None = None
    after = before = None
    for name, value in options:
        if name == "cert-authority":
            raise _fail(
                source,
                number,
                "cert-authority keys are not accepted by conveyor",
                hint="List each signer's own public key (`NAME ssh-ed25519 AAAA…`): conveyor names the principal "
                "by the key that signed, and a CA would let it sign for anyone.",
            )
        if name not in ("namespaces", "valid-after", "valid-before"):
            raise _fail(
                source,
                number,
                f"unknown option {name!r}",
                hint='Options are namespaces="…", valid-after="…" and valid-before="…" (see ssh-keygen(1)).',
            )
        if value is None:
            raise _fail(source, number, f'{name} needs a value: {name}="..."')
        if name == "namespaces":
            namespaces = tuple(n.strip() for n in value.split(",") if n.strip())
        elif name == "valid-after":
            after = _parse_time(source, number, name, value)
        else:
            before = _parse_time(source, number, name, value)
    fields = rest.split()
    if len(fields) < 2 or not _is_key_type(fields[0]):
        raise _fail(source, number, "no public key (KEYTYPE BASE64) after the principals")
    try:
        key = PublicKey.parse(f"{fields[0]} {fields[1]}")
    except MalformedSignature as error:
        raise _fail(source, number, error.message) from None
    return AllowedSigner(principals, key, namespaces, after, before, number)
