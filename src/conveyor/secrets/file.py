"""`file://PATH`: secrets in a TOML file of `key = "value"` lines, the embedded default.

The file must not be readable by group or others; conveyor refuses it otherwise and says which `chmod` to run.
"""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from pathlib import Path

from conveyor.errors import SecretError
from conveyor.secrets.base import KeyedStore, missing_secret


def path_from_url(url: str, project_root: Path) -> Path:
    """The file a `file://` URL names: `~` expanded, relative paths taken from the project root."""
    raw = url.split("://", 1)[1]
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else (project_root / path)


class FileSecretStore(KeyedStore):
    """Secrets kept in a private TOML file."""

    def __init__(self, path: Path, url: str | None = None) -> None:
        self.path = path
        self.url = url or f"file://{path}"

    @classmethod
    def from_url(cls, url: str, project_root: Path) -> FileSecretStore:
        return cls(path_from_url(url, project_root), url)

    def _check_private(self) -> None:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"secret file {self.path} is open to group or others (mode {stat.filemode(mode)})",
                hint=f"Make it private with: chmod 600 {self.path}",
            )

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            raise SecretError(
                f"secret file {self.path} does not exist (store {self.url})",
                hint="Create it with `conveyor secrets set KEY --env ENV`, or fix the environment's `secrets` URL.",
            )
        self._check_private()
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:  # a directory, or a file of another user
            raise SecretError(
                f"cannot read secret file {self.path} (store {self.url}): {exc.strerror or type(exc).__name__}",
                hint="The store URL must name a TOML file that you own.",
            ) from None
        except UnicodeDecodeError:
            raise SecretError(f"secret file {self.path} is not UTF-8 text", hint="Save it as UTF-8 TOML.") from None
        except tomllib.TOMLDecodeError as exc:
            # The parser's message quotes no values, only positions.
            raise SecretError(f"secret file {self.path} is not valid TOML: {exc}") from None
        values: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(value, str | int | float | bool):
                raise SecretError(f"secret {key!r} in {self.path} must be a string, not a {type(value).__name__}")
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return values

    def get(self, key: str) -> str:
        values = self._read()
        if key not in values:
            raise missing_secret(key, self.url)
        return self.admit(key, values[key])

    def names(self) -> list[str]:
        return sorted(self._read())

    def set(self, key: str, value: str) -> None:
        values = self._read() if self.path.exists() else {}
        self.admit(key, value)
        values[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = "".join(f"{_toml_key(name)} = {_toml_string(values[name])}\n" for name in sorted(values))
        # mkstemp creates the file with mode 600 under a fresh name, so no other user ever sees the values;
        # the rename then swaps the whole file in at once.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _toml_key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum() and key.isascii()
    return key if bare else _toml_string(key)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def _toml_string(value: str) -> str:
    """A TOML basic string; control characters, which TOML forbids raw, are escaped."""
    escaped = "".join(
        _ESCAPES.get(char) or (f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in value
    )
    return f'"{escaped}"'
