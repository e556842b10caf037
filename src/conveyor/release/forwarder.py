"""The port of a `local://PORT` stage: a TCP forwarder that hands each new connection to the stage's live server
(during a rollout, each request to the live server or the candidate: `conveyor.release.splitter`).

A deployment starts the new server beside the old one on a port of its own, and once it is ready rewrites the
route file; the forwarder reads that file (when it changes) for every new connection, takes the route only when
the verified ledger names it (`conveyor.release.admission`), answers the serial, and the old server is stopped
after. Nothing stops serving while a release replaces another, and a new server that never becomes ready, or
that the ledger does not name, is never routed to.

    python -m conveyor.release.forwarder --port 8701 --route .conveyor/release/local/prod.route \\
        --project . --stage prod
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from conveyor.release.routes import Ack, Route, ack_path, listening_path, stats_path
from conveyor.release.splitter import Splitter, Stats

CHUNK = 1 << 16

Admission = Callable[[Route], str | None]


class Forwarder:
    """Reads the route on change (by mtime), takes it only when `admit` finds no reason to refuse it, answers each
    serial in the ack file, and pipes bytes both ways for each connection to the route it holds."""

    def __init__(self, route_file: Path, admit: Admission) -> None:
        self.route_file = route_file
        self.admit = admit
        self.route: Route | None = None
        self.seen: int | None = None
        self.lock = asyncio.Lock()
        self.splitter = Splitter(Stats(stats_path(route_file)))

    async def current(self) -> Route | None:
        async with self.lock:
            try:
                mtime = self.route_file.stat().st_mtime_ns
            except FileNotFoundError:
                return self.route
            if mtime == self.seen:
                return self.route
            self.seen = mtime
            try:
                route = Route.read(self.route_file)
            except (OSError, ValueError, KeyError, TypeError):
                return self.route
            refused = await asyncio.to_thread(self.admit, route)
            if refused is None:
                self.route = route
            else:
                print(f"refused route {route.serial} to release {route.release}: {refused}", file=sys.stderr)
            Ack(route.serial, route.release, refused).write(ack_path(self.route_file))
            return self.route

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        route = await self.current()
        if route is None:
            client_writer.close()
            return
        if route.split is not None:  # a rollout: each request goes to the live server or the candidate
            await self.splitter.handle(client_reader, client_writer, self.current)
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


async def serve(port: int, route_file: Path, admit: Admission) -> None:
    forwarder = Forwarder(route_file, admit)
    server = await asyncio.start_server(forwarder.handle, "127.0.0.1", port, reuse_address=True)
    listening_path(route_file).write_text(f"{os.getpid()}\n")
    await forwarder.current()
    writing = asyncio.create_task(forwarder.splitter.stats.keep_writing())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    writing.cancel()
    forwarder.splitter.stats.write()
    await forwarder.splitter.close()


def run(port: int, route_file: Path, admit: Admission) -> None:
    """Serve until SIGTERM or SIGINT, on uvloop (what uvicorn[standard] brings) when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] is a dependency; a trimmed install still runs
        asyncio.run(serve(port, route_file, admit))
    else:
        uvloop.run(serve(port, route_file, admit))


def main(argv: list[str] | None = None) -> None:
    from conveyor.release.admission import refusal

    parser = argparse.ArgumentParser(prog="python -m conveyor.release.forwarder")
    parser.add_argument("--port", type=int, required=True, help="the stage's port on 127.0.0.1")
    parser.add_argument("--route", type=Path, required=True, help="the route file a deployment rewrites")
    parser.add_argument("--project", type=Path, required=True, help="the project whose ledger names the routes")
    parser.add_argument("--stage", required=True, help="the release stage served on the port")
    args = parser.parse_args(argv)
    run(args.port, args.route, lambda route: refusal(args.project, args.stage, route))


if __name__ == "__main__":
    main()
