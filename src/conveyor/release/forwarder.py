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
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from conveyor.release.routes import Ack, Route, ack_path, listening_path, stats_path
from conveyor.release.splitter import SplitConnection, Splitter, Stats, spawn

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

    def connection(self) -> Connection:
        return Connection(self)


class Connection(asyncio.Protocol):
    """One caller's connection to the stage's port: reading waits until the route is known, then the connection
    is piped to the live server (`Pipe`) or, during a rollout, split request by request (`SplitConnection`)."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.client: asyncio.Transport | None = None
        self.handler: Pipe | SplitConnection | None = None
        self.early: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client: asyncio.Transport = transport  # type: ignore[assignment]  # a TCP server gives a Transport
        self.client = client
        client.pause_reading()
        spawn(self._begin(client))

    async def _begin(self, client: asyncio.Transport) -> None:
        route = await self.forwarder.current()
        if client.is_closing():
            return
        if route is None:
            client.close()
            return
        handler: Pipe | SplitConnection
        if route.split is None:
            try:
                _, upstream = await asyncio.get_running_loop().create_connection(
                    lambda: PipeUpstream(client), "127.0.0.1", route.port
                )
            except OSError:
                client.close()
                return
            if client.is_closing():
                upstream.close()
                return
            handler = Pipe(upstream)
        else:
            handler = self.forwarder.splitter.connection(client, lambda: self.forwarder.route)
        self.handler = handler
        for data in self.early:
            handler.data_received(data)
        self.early.clear()
        if self.eof:
            handler.eof_received()
        client.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.handler is None:
            self.early.append(data)
        else:
            self.handler.data_received(data)

    def eof_received(self) -> bool:
        if self.handler is None:
            self.eof = True
            return True
        return self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()


class PipeUpstream(asyncio.Protocol):
    """The live server's side of a piped connection: what it sends goes to the caller as it comes."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # create_connection gives a Transport

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def eof_received(self) -> bool:
        return False  # the server is done: the connection closes, and so does the caller's

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client.close()  # after what is buffered for the caller is written

    def pause_writing(self) -> None:
        self.client.pause_reading()

    def resume_writing(self) -> None:
        self.client.resume_reading()


class Pipe:
    """The caller's side of a piped connection: bytes to the live server as they come, both ways."""

    def __init__(self, upstream: PipeUpstream) -> None:
        self.upstream = upstream

    def data_received(self, data: bytes) -> None:
        transport = self.upstream.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def eof_received(self) -> bool:
        transport = self.upstream.transport
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()
        return True  # the server's answer still comes back

    def connection_lost(self, exc: Exception | None) -> None:
        self.upstream.close()

    def pause_writing(self) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream.transport is not None:
            self.upstream.transport.resume_reading()


async def serve(port: int, route_file: Path, admit: Admission) -> None:
    forwarder = Forwarder(route_file, admit)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(forwarder.connection, "127.0.0.1", port, reuse_address=True)
    listening_path(route_file).write_text(f"{os.getpid()}\n")
    await forwarder.current()
    watching = asyncio.create_task(forwarder.splitter.keep_watching())
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    watching.cancel()
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
