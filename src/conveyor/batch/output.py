"""The output of a batch job: a Parquet folder in the lake, written beside it under a hidden name and moved into
place only when complete, so nothing half-written is ever found at the output path.

An existing output is replaced only with `overwrite`: the old folder is moved aside, the new one moved in, and the
old one deleted. On a local disk each move is a rename; object stores copy, which takes longer but still leaves
the output path either as it was or complete.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conveyor.batch.datasets import InputDataset, hidden, local_path
from conveyor.batch.errors import BatchInputError, OutputExists

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.lake import Lake

PART = "part-{index:05d}.parquet"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


@dataclass
class StagedOutput:
    """Where a job writes (`staging`) and where its output goes when complete (`path`), both lake paths."""

    lake: Lake
    path: str
    overwrite: bool
    staging: str = field(init=False)

    def __post_init__(self) -> None:
        parent, name = posixpath.split(self.path)
        self.staging = posixpath.join(parent, f".{name}.conveyor-{uuid.uuid4().hex[:12]}")

    def check(self) -> None:
        """Refuse to go on if the output exists and may not be replaced."""
        if not self.overwrite and self.lake.fs.exists(self.path):
            raise OutputExists(
                f"the output {self.path!r} already exists in the {self.lake.env or 'environment'} lake",
                hint="Choose another --output, or pass --overwrite to replace it.",
            )

    def part(self, index: int = 0) -> str:
        """The lake path of the `index`-th data file inside the staging folder."""
        return posixpath.join(self.staging, PART.format(index=index))

    def native(self, name: str) -> str | None:
        """The native path of a lake path on a local lake, else None."""
        return local_path(self.lake, name)

    @property
    def url(self) -> str:
        """The staging folder's full URL, for engines that write by URL (Spark)."""
        return self.lake.url_of(self.staging)

    def commit(self) -> list[str]:
        """Move the complete staging folder to the output path; returns the output's data files."""
        self.check()
        fs = self.lake.fs
        parent = posixpath.dirname(self.path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        aside = None
        if fs.exists(self.path):
            aside = posixpath.join(parent, f".{posixpath.basename(self.path)}.replaced-{uuid.uuid4().hex[:12]}")
            self._move(self.path, aside)
        try:
            self._move(self.staging, self.path)
        except Exception:
            if aside is not None:
                self._move(aside, self.path)
            raise
        if aside is not None:
            fs.rm(aside, recursive=True)
        return sorted(
            self.lake.path(name) for name in fs.find(self.path) if not hidden(self.lake.path(name), self.path)
        )

    def _move(self, source: str, target: str) -> None:
        """A rename on local disks; on object stores (no folders, no rename) each file copied, then the source
        deleted."""
        fs = self.lake.fs
        if self.lake.location.is_local:
            fs.mv(source, target, recursive=True)
            return
        for name in fs.find(source):
            inside = self.lake.path(name)
            fs.copy(inside, posixpath.join(target, posixpath.relpath(inside, source)))
        fs.rm(source, recursive=True)

    def abort(self) -> None:
        """Delete whatever the job wrote (quietly: the job's own error is what matters)."""
        with contextlib.suppress(OSError, ValueError):
            if self.lake.fs.exists(self.staging):
                self.lake.fs.rm(self.staging, recursive=True)


def plan_output(lake: Lake, path: str, overwrite: bool, dataset: InputDataset) -> StagedOutput:
    """The output at lake path `path`, checked: not the lake's root, apart from the input, absent or replaceable."""
    inside = lake.path(path)
    if not inside:
        raise BatchInputError("the output cannot be the lake's root", hint="Name a folder, e.g. scores/census.parquet")
    if _inside(inside, dataset.path) or _inside(dataset.path, inside):
        raise BatchInputError(
            f"the output {inside!r} overlaps the input {dataset.path!r}",
            hint="Write the scores somewhere else, e.g. scores/" + posixpath.basename(dataset.path),
        )
    output = StagedOutput(lake, inside, overwrite)
    output.check()
    return output


@contextmanager
def staged(output: StagedOutput) -> Iterator[StagedOutput]:
    """Run a job's writing inside; if it fails, its staging folder is removed and the output path untouched."""
    try:
        yield output
    except BaseException:
        output.abort()
        raise
