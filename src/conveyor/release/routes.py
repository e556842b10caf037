"""What a `local://PORT` stage's route file says, what its forwarder answers, and what a server says it serves.

The route file is only a request: the forwarder takes a route after checking it against the verified ledger
(`conveyor.release.admission`), and acknowledges each serial it saw with the reason when it refused it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from pathlib import Path

READY_PATH = "/health/ready"


@dataclass(frozen=True)
class Split:
    """A rollout's candidate beside the route's release: its port, release and package, `canary` with the share
    of requests it answers (`weight`, 0-100) or `shadow` (a copy of every request, its answers never returned)."""

    port: int
    release: int
    digest: str
    mode: str
    weight: int

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Split:
        return cls(
            int(str(data["port"])),
            int(str(data["release"])),
            str(data["digest"]),
            str(data["mode"]),
            int(str(data["weight"])),
        )


@dataclass(frozen=True)
class Route:
    """Where new connections go: the backend port, the release and package served there, a serial per switch;
    during a rollout, the candidate that gets its share of the requests (`split`)."""

    port: int
    release: int
    digest: str
    serial: int
    split: Split | None = None

    @classmethod
    def read(cls, path: Path) -> Route:
        data = json.loads(path.read_text())
        split = Split.from_dict(data["split"]) if data.get("split") else None
        return cls(int(data["port"]), int(data["release"]), str(data["digest"]), int(data["serial"]), split)

    def write(self, path: Path) -> None:
        """Replace the route file atomically (a reader sees the old route or the new one)."""
        _replace(path, asdict(self))


@dataclass(frozen=True)
class Ack:
    """The forwarder's answer to one serial of the route file: taken, or refused and why."""

    serial: int
    release: int | None
    refused: str | None = None

    @classmethod
    def read(cls, path: Path) -> Ack:
        data = json.loads(path.read_text())
        release = data.get("release")
        refused = data.get("refused")
        return cls(int(data["serial"]), None if release is None else int(release), refused and str(refused))

    def write(self, path: Path) -> None:
        _replace(path, asdict(self))


def _replace(path: Path, document: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


def ack_path(route_file: Path) -> Path:
    """Where the forwarder writes its answer to the latest route (the serial a deployment waits for)."""
    return route_file.with_name(route_file.name + ".active")


def stats_path(route_file: Path) -> Path:
    """Where the forwarder appends a rollout's figures, a JSON line a second (`conveyor.release.splitter`)."""
    return route_file.with_name(route_file.name + ".stats")


def listening_path(route_file: Path) -> Path:
    """Where the forwarder writes its pid once it holds the stage's port (another program may hold it instead)."""
    return route_file.with_name(route_file.name + ".listening")


class NotServing(Exception):
    """The server on a port did not say which package it serves (not ready, not a conveyor server, gone)."""


def served_package(port: int, timeout: float = 2) -> str | None:
    """The package digest the server on 127.0.0.1:`port` says it serves (`/health/ready`'s `package`); None
    for a ready server that names no package. NotServing when it is not ready or answers something else."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{READY_PATH}", timeout=timeout)
    except httpx.HTTPError as exc:
        raise NotServing(type(exc).__name__) from None
    if response.status_code != 200:
        raise NotServing(f"HTTP {response.status_code}")
    try:
        document = json.loads(response.content)
    except ValueError:
        raise NotServing("its /health/ready answer is not JSON") from None
    digest = document.get("package") if isinstance(document, dict) else None
    return digest if isinstance(digest, str) else None
