"""`conveyor serve`: serve a package directory, a registered model or an image over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.output import console
from conveyor.errors import ConveyorError


def serve(
    source: Annotated[
        str, typer.Argument(help="Package directory, models:/NAME/VERSION, models:/NAME@ALIAS, or an image.")
    ],
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="Environment whose registry holds a models:/ URI.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the CPU count).", envvar="CONVEYOR_SERVE_WORKERS"),
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Most requests in one run_batch() call.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="Longest a batch waits for a request still arriving (ms).")] = 2.0,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body; bigger ones get 413.")] = 1024 * 1024,
    offload: Annotated[
        str, typer.Option(help="Run score.py in a thread pool: auto (when its calls are slow), always, never.")
    ] = "auto",
    graceful_timeout: Annotated[float, typer.Option(help="Seconds to finish in-flight requests on shutdown.")] = 30.0,
    name: Annotated[
        str | None, typer.Option(help="Model name in /v2 paths (default: the manifest's model name).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve score.py over HTTP: /score, Open Inference Protocol v2, MLflow /invocations, health, metrics."""
    from conveyor.serving.sources import resolve

    if offload not in ("auto", "always", "never"):
        raise ConveyorError(f"--offload must be auto, always or never, not {offload!r}")
    resolved = resolve(source, env)
    if resolved.kind == "image":
        from conveyor.serving.container import run_image

        assert resolved.image is not None
        console.print(f"[bold]serving image[/] {resolved.image} on http://{host}:{port}")
        code = run_image(resolved.image, host, port, workers)
        if code not in (0, 130, 143):
            raise ConveyorError(
                f"the container of {resolved.image} exited with code {code}",
                hint="Its log is above; check that the image was built by `conveyor build`.",
            )
        return
    from conveyor.serving.server import run_server

    assert resolved.package_dir is not None
    console.print(f"[bold]serving[/] {resolved.package_dir} on [cyan]http://{host}:{port}[/] (Ctrl-C stops)")
    run_server(
        resolved.package_dir,
        host,
        port,
        workers,
        name=name,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        offload=offload,
        graceful_timeout=graceful_timeout,
        log_level=log_level,
    )
