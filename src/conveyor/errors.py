"""Errors that reach people: each says what was wrong, where, and what to do, and carries its exit code.

Exit codes are part of the interface: 0 ok, 1 a failed check, test or gate, 2 bad usage, input or configuration.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error conveyor reports to a person (never with a traceback of its own)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ConfigError(ConveyorError):
    """The project file or an environment's configuration is wrong."""


class SecretError(ConveyorError):
    """A secret store cannot be opened, or a secret is missing. Never carries a secret value."""


class SecretMissing(SecretError):
    """A store does not hold `key` (or holds it empty); the hint says how to set it for the store's owner."""

    def __init__(self, message: str, *, key: str, owner: str = "--env ENV") -> None:
        super().__init__(message, hint=f"Set it with: conveyor secrets set {key} {owner}")
        self.key = key

    def owned_by(self, owner: str) -> SecretMissing:
        """The same error, its fix naming the store's owner (`--env dev`, `--env gates`)."""
        return SecretMissing(self.message, key=self.key, owner=owner)


class LakeError(ConveyorError):
    """A data lake path is missing, or climbs out of the environment's lake."""


class LakePathOutside(LakeError, PermissionError):
    """A path that would leave the lake."""


class LakePathMissing(LakeError, FileNotFoundError):
    """A path that does not exist in the lake."""


class NotFoundError(ConveyorError):
    """A named thing (model, version, build, release) does not exist."""


class CheckFailed(ConveyorError):
    """A check ran and failed: a test, a gate, a verification, a training script."""

    exit_code = 1
