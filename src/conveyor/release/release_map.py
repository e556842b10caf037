"""The releases of a ledger state, numbered 1..N in the order they were requested, read on demand.

A state folded from the whole chain holds every release in memory. A state resumed from the prefix a process of
this checkout kept (`conveyor.release.prefix_file`) holds only how many releases there are and, for each, the
event its kept form was written at; a release is read from the kept store the first time a fold or a view asks
for it. So a new process that appends one event reads the releases that event can change, not all of them.

A kept release that is missing, written at another event than the kept state says, or whose MAC does not verify
is never used: the map then takes every release it has not read yet from a walk of the chain up to the kept
event (`fallback`), as a process without a kept prefix would.

The rules change a release only through `map[id]`, `map.get(id)` or `map[id] = ...`; those mark it changed, and
only changed releases are written when the state is kept again. Iterating (`values()`, `items()`) is for reading.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from typing import Any, Generic, Protocol, TypeVar

ReleaseState = TypeVar("ReleaseState")  # conveyor.release.state.ReleaseState (which imports this module)


class KeptReleases(Protocol[ReleaseState]):
    """Where the releases of a kept state are read from: the release as it was written at event `version`, or
    None when the store does not hold exactly that (then the map falls back to a walk)."""

    def load(self, release_id: int, version: int) -> ReleaseState | None: ...

    def load_many(self, wanted: Mapping[int, int]) -> dict[int, ReleaseState]: ...


class ReleaseMap(MutableMapping[int, ReleaseState], Generic[ReleaseState]):
    """Release id → its state; ids run 1..len(map) without gaps."""

    def __init__(self) -> None:
        self._loaded: dict[int, ReleaseState] = {}
        self._count = 0
        self._versions = array("q")  # per id (index id - 1): the event its kept form was written at, 0: never kept
        self.changed: set[int] = set()  # read or set through [] / get() since the state was last kept
        self.source: KeptReleases[ReleaseState] | None = None
        self.fallback: Callable[[], Mapping[int, ReleaseState]] | None = None

    # --- pickling: the kept state holds the count and the versions, never the releases -------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"count": self._count, "versions": self._versions.tobytes()}

    def __setstate__(self, kept: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self._count = int(kept["count"])
        self._versions.frombytes(kept["versions"])
        if len(self._versions) != self._count:
            raise ValueError("the kept releases do not match their count")

    def keeping(self, seq: int) -> tuple[dict[int, ReleaseState], Callable[[], None]]:
        """The releases changed since the state was last kept, to be written at event `seq`; the map now says
        they were (the kept state pickled next holds it), and the callable undoes that when the write fails."""
        changed = {i: self._loaded[i] for i in sorted(self.changed)}
        before, self._versions = self._versions, array("q", self._versions)
        for release_id in changed:
            self._versions[release_id - 1] = seq
        self.changed = set()

        def undo() -> None:
            self._versions, self.changed = before, set(changed) | self.changed

        return changed, undo

    # --- the mapping ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def __contains__(self, release_id: object) -> bool:
        return isinstance(release_id, int) and 1 <= release_id <= self._count

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, self._count + 1))

    def __reversed__(self) -> Iterator[int]:
        return iter(range(self._count, 0, -1))

    def __getitem__(self, release_id: int) -> ReleaseState:
        release = self._read(release_id)
        self.changed.add(release_id)
        return release

    def __setitem__(self, release_id: int, release: ReleaseState) -> None:
        if release_id == self._count + 1:
            self._count += 1
            self._versions.append(0)
        elif release_id not in self:
            raise KeyError(f"release {release_id} is out of sequence (the next is {self._count + 1})")
        self._loaded[release_id] = release
        self.changed.add(release_id)

    def __delitem__(self, release_id: int) -> None:
        raise TypeError("a ledger's releases are never deleted")

    def values(self) -> ValuesView[ReleaseState]:
        self._read_all()
        return ValuesView(_Reading(self))

    def items(self) -> ItemsView[int, ReleaseState]:
        self._read_all()
        return ItemsView(_Reading(self))

    def newest_first(self) -> Iterator[ReleaseState]:
        """Every release, newest first, each read only when the iteration reaches it."""
        for release_id in reversed(self):
            yield self._read(release_id)

    # --- reading kept releases -----------------------------------------------------------------------------
    def _read(self, release_id: int) -> ReleaseState:
        found = self._loaded.get(release_id)
        if found is not None:
            return found
        if release_id not in self:
            raise KeyError(release_id)
        version = self._versions[release_id - 1]
        loaded = self.source.load(release_id, version) if self.source is not None and version else None
        if loaded is None:
            self._fall_back()
            return self._loaded[release_id]
        self._loaded[release_id] = loaded
        return loaded

    def _read_all(self) -> None:
        if len(self._loaded) == self._count:
            return
        wanted = {i: self._versions[i - 1] for i in self if i not in self._loaded}
        if self.source is not None and all(wanted.values()):
            found = self.source.load_many(wanted)
            if len(found) == len(wanted):
                self._loaded.update(found)
                return
        self._fall_back()

    def _fall_back(self) -> None:
        """Every release not read yet, from a walk of the chain up to the kept event."""
        if self.fallback is None:
            raise LookupError("a kept release could not be read, and there is no chain to walk for it")
        walked = self.fallback()
        for release_id in self:
            if release_id not in self._loaded:
                self._loaded[release_id] = walked[release_id]
                self.changed.add(release_id)  # written again when the state is next kept
        self.source = None


class _Reading(Mapping[int, ReleaseState], Generic[ReleaseState]):
    """A read-only view of a map whose releases are all read: iterating it marks nothing changed."""

    def __init__(self, releases: ReleaseMap[ReleaseState]) -> None:
        self._releases = releases

    def __len__(self) -> int:
        return len(self._releases)

    def __iter__(self) -> Iterator[int]:
        return iter(self._releases)

    def __getitem__(self, release_id: int) -> ReleaseState:
        return self._releases._read(release_id)
