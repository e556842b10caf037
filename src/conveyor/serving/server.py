"""Serving with N worker processes on one listening socket: forked from a supervisor that replaces dead ones.

Each worker runs uvicorn (httptools + uvloop) on the inherited socket and calls score.py's `init()` once.
SIGTERM or SIGINT to the supervisor stops every worker gracefully: they stop accepting, finish in-flight
requests (up to `graceful_timeout` seconds) and exit. A worker that dies otherwise is replaced; a worker whose
`init()` failed stops the whole server with a clear error (a model that cannot load will not load on retry).

Metrics are the whole server's: the workers share prometheus_client's multiprocess folder, made per run.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.serving.loader import ScoreInitError, check_package_dir
from conveyor.serving.metrics import multiprocess_dir, remove_multiprocess_dir, worker_gone
from conveyor.serving.options import ServeOptions
from conveyor.serving.recycling import Recycling

log = logging.getLogger("conveyor.serving")

INIT_FAILED = 3  # a worker's exit code when score.py's init() raised (told through the report pipe too: only that
# pipe, which score.py cannot write to by accident, stops the server; an exit code alone is a worker that died)
RETIRED = 5  # a worker's exit code when it was retired (a call into score.py hung, or it was recycled)
RESPAWN_WINDOW = 10.0  # seconds; more than RESPAWN_LIMIT early deaths in it stop the server
RESPAWN_LIMIT = 5


def bind_socket(host: str, port: int, reuse_port: bool = False, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket the workers inherit. A port another server listens on is an error, unless
    `reuse_port` asks to share it (SO_REUSEPORT, set by every server that shares it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once despite TIME_WAIT
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConveyorError(
                f"cannot listen on {host}:{port}: port in use (another server listens there)",
                hint="Choose another --port, or stop the server that holds this one. To run beside it on purpose "
                "(both answering), start both with --reuse-port.",
            ) from None
        raise ConveyorError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="Choose another --host or --port.",
        ) from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def configure_logging(level: str = "info") -> None:
    """One line per record on stderr, secrets masked (the worker's pid in every line)."""
    from conveyor.secrets import redaction

    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redaction.install()


def _die_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the supervisor dies (no orphaned workers)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


REPORT = struct.Struct("=ii")  # (pid, what) on the report pipe: one write each, atomic
INIT_FAILED_REPORT, READY_REPORT, RECYCLE_REPORT = 0, 1, 2


def _report(fd: int, what: int) -> None:
    os.write(fd, REPORT.pack(os.getpid(), what))


def _worker(sock: socket.socket, package_dir: Path, options: ServeOptions, report: int, replacing: bool) -> None:
    """Body of one worker process (after fork): serve until told to stop; never returns. `report` is the pipe on
    which it tells the supervisor that init() failed, that it serves, or that it is due for recycling. A worker
    `replacing` another runs init() before it accepts a connection, so the others serve meanwhile."""
    code = 0
    try:
        import uvicorn

        from conveyor.serving.app import ScoringApp
        from conveyor.serving.connections import guarded_protocol

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor only, which stops workers one signal each
        _die_with_parent()
        holder: dict[str, uvicorn.Server] = {}
        outcome: list[int] = []

        def stop_on_failure(exc: BaseException) -> None:
            _report(report, INIT_FAILED_REPORT)
            outcome.append(INIT_FAILED)
            holder["server"].should_exit = True

        def retire(reason: str) -> None:
            log.error("retiring worker %d: %s; a fresh worker replaces it", os.getpid(), reason)
            outcome.append(RETIRED)
            holder["server"].should_exit = True

        def recycle(reason: str) -> None:
            log.info("worker %d is %s; a fresh worker takes over once it is ready", os.getpid(), reason)
            _report(report, RECYCLE_REPORT)

        app = ScoringApp(
            package_dir,
            on_init_failure=stop_on_failure,
            on_stuck=retire,
            init_in_background=not replacing,
            **options.app_options(),
        )
        served: Any = app
        if options.max_requests or options.max_worker_memory:
            served = Recycling(
                app,
                recycle,
                max_requests=options.max_requests,
                jitter=options.max_requests_jitter,
                max_memory_mib=options.max_worker_memory,
            )
        config = uvicorn.Config(
            served,
            loop="uvloop",
            http=guarded_protocol(
                options.header_timeout, lambda: app.metrics.count_error("timeout"), options.max_header_bytes
            ),
            lifespan="on",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            timeout_graceful_shutdown=math.ceil(options.graceful_timeout),
            timeout_keep_alive=int(options.keep_alive) or 1,
            server_header=False,
            date_header=False,
        )

        class Reporting(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started and not outcome:
                    _report(report, READY_REPORT)

        server = holder["server"] = Reporting(config)
        server.run(sockets=[sock])
        code = outcome[0] if outcome else 0
    except BaseException:  # the worker must end with an exit code, not a stack unwinding into fork
        log.exception("worker %d crashed", os.getpid())
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Supervisor:
    """Forks workers, replaces those that die or retire, and stops them all gracefully on SIGTERM/SIGINT."""

    def __init__(
        self, sock: socket.socket, package_dir: Path, workers: int, options: ServeOptions, metrics_dir: Path
    ) -> None:
        self.sock, self.package_dir, self.count = sock, package_dir, workers
        self.options, self.metrics_dir = options, metrics_dir
        self.workers: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.early_deaths: list[float] = []
        self.reports, self.report_end = os.pipe()  # workers' reports: init() failed, ready, due for recycling
        os.set_blocking(self.reports, False)
        self.init_failed: set[int] = set()
        self.handover: dict[int, int] = {}  # new worker -> the recycled one it replaces once ready
        self.recycled: set[int] = set()  # workers told to stop because a replacement serves

    def spawn(self, replacing: bool = False) -> int:
        pid = os.fork()
        if pid == 0:
            os.close(self.reports)
            _worker(self.sock, self.package_dir, self.options, self.report_end, replacing)
        self.workers[pid] = time.monotonic()
        return pid

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> None:
        """Serve until a signal stops the server; raises ScoreInitError when init() failed."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.count):
                self.spawn()
            while not self.stopping:
                self._read_reports()
                self._reap()
                time.sleep(0.05)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _reap(self) -> None:
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            started = self.workers.pop(pid, None)
            if started is None:
                continue
            worker_gone(self.metrics_dir, pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            self._read_reports()
            if pid in self.recycled:
                self.recycled.discard(pid)
                continue
            if pid in self.init_failed:
                raise ScoreInitError(
                    f"init() of {self.package_dir / 'score.py'} failed; the server is not ready and stops",
                    hint="The traceback is in the log above. Fix score.py or the model files and serve again.",
                )
            now = time.monotonic()
            if now - started < RESPAWN_WINDOW:
                self.early_deaths = [t for t in self.early_deaths if now - t < RESPAWN_WINDOW] + [now]
                if len(self.early_deaths) > RESPAWN_LIMIT:
                    raise ConveyorError(
                        f"workers keep dying right after start ({len(self.early_deaths)} in {RESPAWN_WINDOW:.0f} s)",
                        hint="See the log above for why; fix it and serve again.",
                    )
            if code == RETIRED:
                log.info("worker %d retired; starting a new one", pid)
            else:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                log.warning("worker %d died (%s); starting a new one", pid, how)
            self.spawn(replacing=True)

    def _read_reports(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.reports, REPORT.size * 256):
                for pid, what in REPORT.iter_unpack(data):
                    self._on_report(pid, what)

    def _on_report(self, pid: int, what: int) -> None:
        if what == INIT_FAILED_REPORT:
            self.init_failed.add(pid)
        elif what == RECYCLE_REPORT and pid in self.workers and pid not in self.handover.values():
            self.handover[self.spawn(replacing=True)] = pid
        elif what == READY_REPORT and pid in self.handover:
            old = self.handover.pop(pid)
            self.recycled.add(old)
            log.info("worker %d serves; stopping recycled worker %d after its requests", pid, old)
            with contextlib.suppress(ProcessLookupError):
                os.kill(old, signal.SIGTERM)

    def _stop_all(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.workers.pop(pid, None)
        deadline = time.monotonic() + self.options.graceful_timeout + 5
        while self.workers and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.02)
            else:
                self.workers.pop(pid, None)
        for pid in list(self.workers):
            log.warning("worker %d did not stop in time; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.workers.clear()
        os.close(self.reports)
        os.close(self.report_end)


def _preload(package_dir: Path, sock: socket.socket) -> None:
    from conveyor.serving.loader import import_score

    try:
        import_score(package_dir)
    except ConveyorError:
        sock.close()
        raise
    except BaseException as exc:
        sock.close()
        log.error("importing %s failed", package_dir / "score.py", exc_info=exc)
        raise ScoreInitError(
            f"importing {package_dir / 'score.py'} failed: {type(exc).__name__}: {exc}",
            hint="The traceback is in the log above. Fix score.py or its requirements and serve again.",
        ) from None


def run_server(package_dir: str | Path, options: ServeOptions | None = None) -> None:
    """Serve `package_dir` with `options` (address, workers: default the CPU count, limits, timeouts) until
    SIGTERM/SIGINT.

    With `options.preload` (default: when there is more than one worker), score.py is imported (not initialised)
    once in the supervisor before the workers are forked: they share its modules, and a replaced worker only runs
    `init()`. With one worker the supervisor stays small instead.
    Raises ScoreInitError when score.py's init() fails, ConveyorError for a bad package dir or a busy port.
    """
    options = (options or ServeOptions()).check()
    package_dir = check_package_dir(Path(package_dir))
    workers = options.workers or os.cpu_count() or 1
    configure_logging(options.log_level)
    import uvicorn  # noqa: F401 - imported once here so every forked worker starts with it loaded

    sock = bind_socket(options.host, options.port, options.reuse_port)
    metrics_dir, ours = multiprocess_dir()  # before score.py is imported: it may use prometheus_client too
    try:
        if options.preload if options.preload is not None else workers > 1:
            _preload(package_dir, sock)
        host, port = sock.getsockname()[:2]
        log.info("serving %s on http://%s:%d with %d worker(s)", package_dir, host, port, workers)
        Supervisor(sock, package_dir, workers, options, metrics_dir).run()
    finally:
        sock.close()
        if ours:
            remove_multiprocess_dir(metrics_dir)
    log.info("server stopped")
