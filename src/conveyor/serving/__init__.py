"""Serving score.py over HTTP: a bare ASGI app (`/score`, Open Inference Protocol v2, MLflow `/invocations`,
health, Prometheus metrics, OpenAPI) with adaptive batching, run by uvicorn in supervised worker processes.

- `serve(source, options, env=...)`: what `conveyor serve` and `python -m conveyor.serving` do: a package
  directory, a `models:/` URI or an image, served until stopped.
- `run_server(package_dir, options)`: serve a package directory.
- `create_app(package_dir, **options)`: the ASGI app, for any ASGI server (`options`: the keys of `AppOptions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from conveyor.serving.calls import Offload
from conveyor.serving.options import OPTION_HELP, AppOptions, ServeOptions
from conveyor.serving.sources import serve

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.serving.app import ScoringApp


def create_app(package_dir: str | Path, **options: Unpack[AppOptions]) -> ScoringApp:
    from conveyor.serving.app import create_app as create

    return create(package_dir, **options)


def run_server(package_dir: str | Path, options: ServeOptions | None = None) -> None:
    from conveyor.serving.server import run_server as run

    run(package_dir, options)


__all__ = ["OPTION_HELP", "AppOptions", "Offload", "ServeOptions", "create_app", "run_server", "serve"]
