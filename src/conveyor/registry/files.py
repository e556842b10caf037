"""Copying a model's files: regular files and folders only, never following a link.

What a training script leaves in its output folder is untrusted: a symbolic link (to the CI key, a secret store,
the sealed set) would copy the file it points at, which the sandbox hid from the script but not from conveyor;
a FIFO, socket or device would block the copy or read from outside. Every entry is looked at with `lstat` and
every file opened with `O_NOFOLLOW`, so a link swapped in between the look and the copy is refused too.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import stat
from pathlib import Path

from conveyor.errors import CheckFailed

KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class NotRegularFile(CheckFailed):
    """A model folder holds something other than regular files and folders (exit code 1)."""


def _refuse(path: Path, mode: int, what: str) -> NotRegularFile:
    kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return NotRegularFile(
        f"{what}: {path} is {kind}; a model holds regular files and folders only",
        hint="Write the model's files themselves into ctx.output_dir: no links, pipes or devices.",
    )


def check_regular_tree(folder: Path, what: str) -> None:
    """Refuse (`NotRegularFile`) any entry under `folder` that is not a regular file or folder, without following."""
    mode = os.lstat(folder).st_mode
    if not stat.S_ISDIR(mode):
        raise _refuse(folder, mode, what)
    for entry in os.scandir(folder):
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            check_regular_tree(Path(entry.path), what)
        elif not stat.S_ISREG(mode):
            raise _refuse(Path(entry.path), mode, what)


def copy_regular_tree(source: Path, dest: Path, what: str, *, skip: tuple[str, ...] = ()) -> None:
    """Copy the folder `source` to `dest` (which must not exist): regular files and folders only, links refused.

    Entries whose names match a `skip` pattern (fnmatch, e.g. `__pycache__`, `*.pyc`) are left out unlooked-at.
    """
    mode = os.lstat(source).st_mode
    if not stat.S_ISDIR(mode):
        raise _refuse(source, mode, what)
    dest.mkdir(parents=True)
    for entry in os.scandir(source):
        if any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in skip):
            continue
        path, target = Path(entry.path), dest / entry.name
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            copy_regular_tree(path, target, what, skip=skip)
        else:
            copy_regular_file(path, target, what)


def copy_regular_file(path: Path, target: Path, what: str) -> None:
    """Copy one regular file (mode bits kept, at most 0o755); anything else at `path` is refused, never opened."""
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):  # became a link, or a FIFO without a writer
            raise _refuse(path, os.lstat(path).st_mode, what) from None
        raise
    with os.fdopen(fd, "rb") as source:
        mode = os.fstat(source.fileno()).st_mode
        if not stat.S_ISREG(mode):  # swapped for a FIFO or device between the look and the open
            raise _refuse(path, mode, what)
        with open(target, "xb") as out:
            shutil.copyfileobj(source, out)
    os.chmod(target, stat.S_IMODE(mode) & 0o755)
