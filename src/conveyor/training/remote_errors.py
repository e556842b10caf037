"""How an error crosses the training channel: the parent encodes what it raised (its kind, masked message and
hint) into the answer, the child's `Client` raises it as a `RemoteError`, and `decode_error` makes it the same
type again on the child's side (a `LakePathMissing` is still a `FileNotFoundError` there).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from conveyor import errors

if TYPE_CHECKING:
    from collections.abc import Callable

KINDS: tuple[type[BaseException], ...] = (  # most specific first: an error is sent as the first it is
    errors.LakePathMissing,
    errors.LakePathOutside,
    errors.LakeError,
    errors.SecretError,
    errors.ConveyorError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,
)


class RemoteError(Exception):
    """An error the parent answered with: its kind (`LakePathMissing`, `PermissionError`...) and message."""

    def __init__(self, kind: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


def encode_error(error: BaseException, mask: Callable[[str], str]) -> dict[str, Any]:
    """The answer that carries `error` back to the script: its kind, and its message and hint through `mask`."""
    kind = next((k.__name__ for k in KINDS if isinstance(error, k)), "RuntimeError")
    message = error.message if isinstance(error, errors.ConveyorError) else str(error) or type(error).__name__
    hint = error.hint if isinstance(error, errors.ConveyorError) else None
    return {"error": kind, "message": mask(message), "hint": mask(hint) if hint else None}


def raise_if_error(answer: dict[str, Any]) -> None:
    """A `RemoteError` when `answer` carries one."""
    if "error" in answer:
        raise RemoteError(answer["error"], answer.get("message", ""), answer.get("hint"))


def decode_error(error: RemoteError) -> Exception:
    """The exception the parent raised, as the same type here (a conveyor error, a built-in one, else
    `RuntimeError`)."""
    kind = getattr(errors, error.kind, None)
    if isinstance(kind, type) and issubclass(kind, errors.ConveyorError):
        return kind(error.message, hint=error.hint)
    builtin = getattr(builtins, error.kind, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin(error.message)
    return RuntimeError(error.message)
