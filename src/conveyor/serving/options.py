"""How a scoring server runs: address, workers, batching, limits and timeouts, in one checked value.

`conveyor serve`, `python -m conveyor.serving` and `conveyor.serving.serve()` all take a `ServeOptions`;
`OPTION_HELP` is the one description of each option that both command lines show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from conveyor.errors import ConveyorError
from conveyor.serving.calls import Offload

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_RECORDS = 10_000
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")

OPTION_HELP = {
    "host": "Address to listen on.",
    "port": "Port to listen on.",
    "workers": "Worker processes (default: the CPU count).",
    "name": "Model name in /v2 paths (default: the manifest's model name).",
    "max_batch_size": "Most requests in one run_batch() call.",
    "max_wait_ms": "Longest a batch waits for a request still arriving (ms).",
    "max_body_bytes": "Largest request body; bigger ones get 413.",
    "max_records": "Most records in one request (a list, a dataframe, a tensor's first dimension); more get 413.",
    "offload": "Where score.py runs: always in a thread pool (the event loop stays free for health checks and "
    "other clients), never (on the event loop: lowest latency, but a slow call holds everything), or auto "
    "(inline while calls are fast).",
    "timeout": "Seconds score.py may take for one request; later it gets 504 (a call still running at twice this "
    "retires the worker).",
    "header_timeout": "Seconds a client has to send a request's headers (then 408 and the connection is closed).",
    "max_header_bytes": "Largest request line and headers together; bigger ones get 431 and the connection closes.",
    "max_requests": "Recycle a worker after this many requests, as gunicorn does (0: never).",
    "max_requests_jitter": "Up to this many more requests before recycling, drawn per worker (so not all at once).",
    "max_worker_memory": "Recycle a worker whose resident memory passes this many MiB, checked after each request "
    "(0: never). In-flight requests finish first.",
    "body_timeout": "Seconds a client has to send a request's body (then 408).",
    "keep_alive": "Seconds an idle keep-alive connection stays open.",
    "graceful_timeout": "Seconds to finish in-flight requests on shutdown.",
    "reuse_port": "Share the port with servers already listening on it (SO_REUSEPORT, e.g. to hand over without "
    "downtime); without it a port in use is an error.",
    "log_level": "debug, info, warning or error.",
}


class AppSettings(TypedDict, total=False):
    """What `ServeOptions` sets of a `ScoringApp` (see `ScoringApp`), each optional."""

    name: str | None
    max_batch_size: int
    max_wait_ms: float
    max_body_bytes: int
    max_records: int
    offload: Offload | str
    timeout: float
    body_timeout: float


class AppOptions(AppSettings, total=False):
    """The keyword options of `ScoringApp` and `create_app`: the settings, and how a server hooks into the app."""

    init_in_background: bool
    on_init_failure: Callable[[BaseException], None] | None
    on_stuck: Callable[[str], None] | None


@dataclass(frozen=True)
class ServeOptions:
    """Everything `serve()` and `run_server()` need besides what to serve. `check()` says what is wrong."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None
    name: str | None = None
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_records: int = DEFAULT_MAX_RECORDS
    offload: Offload = Offload.ALWAYS
    timeout: float = 60.0
    header_timeout: float = 10.0
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_worker_memory: int = 0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    graceful_timeout: float = 30.0
    reuse_port: bool = False
    log_level: str = "info"
    preload: bool | None = None

    def check(self) -> ServeOptions:
        """This value, or a ConveyorError naming the option that is out of range."""
        try:
            Offload(self.offload)
        except ValueError:
            raise ConveyorError(f"--offload must be always, auto or never, not {self.offload!r}") from None
        if self.log_level not in LOG_LEVELS:
            raise ConveyorError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        if not 0 <= self.port <= 65535:
            raise ConveyorError(f"--port must be between 0 and 65535, not {self.port}")
        at_least_one = {
            "workers": self.workers if self.workers is not None else 1,
            "max_batch_size": self.max_batch_size,
            "max_body_bytes": self.max_body_bytes,
            "max_records": self.max_records,
            "max_header_bytes": self.max_header_bytes,
        }
        never_negative = {
            "max_requests": self.max_requests,
            "max_requests_jitter": self.max_requests_jitter,
            "max_worker_memory": self.max_worker_memory,
        }
        for name, value in never_negative.items():
            if value < 0:
                raise ConveyorError(f"--{name.replace('_', '-')} cannot be negative (0 turns it off), not {value}")
        for name, value in at_least_one.items():
            if value < 1:
                raise ConveyorError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
        positive = {
            "timeout": self.timeout,
            "header_timeout": self.header_timeout,
            "body_timeout": self.body_timeout,
            "keep_alive": self.keep_alive,
        }
        for name, seconds in positive.items():
            if not seconds > 0:
                raise ConveyorError(f"--{name.replace('_', '-')} must be more than 0 seconds, not {seconds}")
        if self.max_wait_ms < 0 or self.graceful_timeout < 0:
            raise ConveyorError("--max-wait-ms and --graceful-timeout cannot be negative")
        return self

    def app_options(self) -> AppSettings:
        """The keyword arguments of `ScoringApp` these options set."""
        return {
            "name": self.name,
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "max_body_bytes": self.max_body_bytes,
            "max_records": self.max_records,
            "offload": Offload(self.offload),
            "timeout": self.timeout,
            "body_timeout": self.body_timeout,
        }

    def arguments(self) -> list[str]:
        """Command-line arguments for the options that differ from the defaults, less the address (how an image's
        server is given the same settings)."""
        defaults = ServeOptions()
        args: list[str] = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("host", "port", "reuse_port", "preload") or value == getattr(defaults, field.name):
                continue
            if value is None:
                continue
            args += [f"--{field.name.replace('_', '-')}", str(value)]
        return args
