"""`conveyor serve`: serve a package directory, a registered model or an image over HTTP (`conveyor.serving.serve`)."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.output import say
from conveyor.serving import OPTION_HELP as HELP
from conveyor.serving import Offload, ServeOptions

D = ServeOptions()


def serve(
    source: Annotated[
        str, typer.Argument(help="Package directory, models:/NAME/VERSION, models:/NAME@ALIAS, or an image.")
    ],
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Environment whose registry holds a models:/ URI.")
    ] = None,
    host: Annotated[str, typer.Option(help=HELP["host"])] = D.host,
    port: Annotated[int, typer.Option(help=HELP["port"])] = D.port,
    workers: Annotated[int | None, typer.Option(help=HELP["workers"], envvar="CONVEYOR_SERVE_WORKERS")] = None,
    max_batch_size: Annotated[int, typer.Option(help=HELP["max_batch_size"])] = D.max_batch_size,
    max_wait_ms: Annotated[float, typer.Option(help=HELP["max_wait_ms"])] = D.max_wait_ms,
    max_body_bytes: Annotated[int, typer.Option(help=HELP["max_body_bytes"])] = D.max_body_bytes,
    max_records: Annotated[int, typer.Option(help=HELP["max_records"])] = D.max_records,
    offload: Annotated[Offload, typer.Option(help=HELP["offload"])] = D.offload,
    timeout: Annotated[float, typer.Option(help=HELP["timeout"])] = D.timeout,
    header_timeout: Annotated[float, typer.Option(help=HELP["header_timeout"])] = D.header_timeout,
    max_header_bytes: Annotated[int, typer.Option(help=HELP["max_header_bytes"])] = D.max_header_bytes,
    max_requests: Annotated[int, typer.Option(help=HELP["max_requests"])] = D.max_requests,
    max_requests_jitter: Annotated[int, typer.Option(help=HELP["max_requests_jitter"])] = D.max_requests_jitter,
    max_worker_memory: Annotated[int, typer.Option(help=HELP["max_worker_memory"])] = D.max_worker_memory,
    body_timeout: Annotated[float, typer.Option(help=HELP["body_timeout"])] = D.body_timeout,
    keep_alive: Annotated[float, typer.Option(help=HELP["keep_alive"])] = D.keep_alive,
    graceful_timeout: Annotated[float, typer.Option(help=HELP["graceful_timeout"])] = D.graceful_timeout,
    reuse_port: Annotated[bool, typer.Option("--reuse-port", help=HELP["reuse_port"])] = False,
    name: Annotated[str | None, typer.Option(help=HELP["name"])] = None,
    log_level: Annotated[str, typer.Option(help=HELP["log_level"])] = D.log_level,
) -> None:
    """Serve score.py over HTTP: /score, Open Inference Protocol v2, MLflow /invocations, health, metrics.

    Runs until Ctrl-C or SIGTERM. The same as `python -m conveyor.serving` and `conveyor.serving.serve()`.
    """
    from conveyor.serving import serve as serve_source

    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        name=name,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        max_records=max_records,
        offload=offload,
        timeout=timeout,
        header_timeout=header_timeout,
        max_header_bytes=max_header_bytes,
        max_requests=max_requests,
        max_requests_jitter=max_requests_jitter,
        max_worker_memory=max_worker_memory,
        body_timeout=body_timeout,
        keep_alive=keep_alive,
        graceful_timeout=graceful_timeout,
        reuse_port=reuse_port,
        log_level=log_level,
    )
    serve_source(source, options, env=env, announce=lambda line: say(f"{line} (Ctrl-C stops)"))
