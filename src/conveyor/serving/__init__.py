"""Serving score.py over HTTP: a bare ASGI app (`/score`, Open Inference Protocol v2, MLflow `/invocations`,
health, Prometheus metrics, OpenAPI) with adaptive batching, run by uvicorn in supervised worker processes.

`create_app(package_dir)` builds the ASGI app; `run_server(package_dir, host, port, workers)` serves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.serving.app import ScoringApp


def create_app(package_dir: Any, **options: Any) -> ScoringApp:
    from conveyor.serving.app import create_app as create

    return create(package_dir, **options)


def run_server(
    package_dir: Any, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None, **options: Any
) -> None:
    from conveyor.serving.server import run_server as run

    run(package_dir, host, port, workers, **options)


__all__ = ["create_app", "run_server"]
