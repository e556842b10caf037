"""The port of a `local://PORT` stage: a TCP forwarder that hands each new connection to the stage's live server.

A deployment starts the new server beside the old one on a port of its own, and once it is ready rewrites the
route file; the forwarder reads that file (when it changes) for every new connection, acknowledges the route it
now uses, and the old server is stopped after. Nothing stops serving while a release replaces another, and a new
server that never becomes ready is never routed to.

    python -m conveyor.release.forwarder --port 8701 --route .conveyor/release/local/prod.route
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 16


@dataclass(frozen=True)
class Route:
    """Where new connections go: the backend port, which release serves there, and a serial per switch."""

    port: int
    release: int
    serial: int

    @classmethod
    def read(cls, path: Path) -> Route:
        data = json.loads(path.read_text())
        return cls(int(data["port"]), int(data["release"]), int(data["serial"]))

    def write(self, path: Path) -> None:
        """Replace the route file atomically (a reader sees the old route or the new one)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"port": self.port, "release": self.release, "serial": self.serial}))
        os.replace(tmp, path)


def ack_path(route_file: Path) -> Path:
    """Where the forwarder writes the route it uses now (the serial a deployment waits for)."""
    return route_file.with_name(route_file.name + ".active")


class Forwarder:
    """Reads the route on change (by mtime), acknowledges it, and pipes bytes both ways for each connection."""

    def __init__(self, route_file: Path) -> None:
        self.route_file = route_file
        self.route: Route | None = None
        self.seen: int | None = None

    def current(self) -> Route | None:
        try:
            mtime = self.route_file.stat().st_mtime_ns
        except FileNotFoundError:
            return self.route
        if mtime != self.seen:
            try:
                route = Route.read(self.route_file)
            except (OSError, ValueError, KeyError):
                return self.route
            self.route, self.seen = route, mtime
            route.write(ack_path(self.route_file))
        return self.route

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        route = self.current()
        if route is None:
            client_writer.close()
            return
        try:
            backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", route.port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def serve(port: int, route_file: Path) -> None:
    forwarder = Forwarder(route_file)
    forwarder.current()
    server = await asyncio.start_server(forwarder.handle, "127.0.0.1", port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conveyor.release.forwarder")
    parser.add_argument("--port", type=int, required=True, help="the stage's port on 127.0.0.1")
    parser.add_argument("--route", type=Path, required=True, help="the route file a deployment rewrites")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.route))


if __name__ == "__main__":
    main()
