"""`conveyor ui`: the dashboard of the release line."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.options import ProjectOption
from conveyor.cli.output import console


def ui(
    project: ProjectOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but loopback shows the release line to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
) -> None:
    """Serve a read-only dashboard of the release line: stages, waiting approvals, builds, models, audit.

    It serves until Ctrl-C. Pages: what is live in each stage (who requested, approved and signed it, and
    the history as a timeline), releases waiting for approval (who may approve, until when, the command to
    do it), builds (lineage, tests, coverage, gates, attestations), models per environment with each gate
    metric charted across builds, and the audit of the signed ledger. The page changes nothing: approving
    stays `conveyor approve ID --key KEY`.

    Example: conveyor ui --project ./census, then open http://127.0.0.1:8765/
    """
    from conveyor.config import load_project
    from conveyor.ui import is_loopback, serve_dashboard

    loaded = load_project(project)
    if not is_loopback(host):
        console.print(
            f"[yellow]warning:[/] the dashboard has no login; anyone who reaches {host}:{port} reads the release line"
        )
    console.print(
        f"dashboard of {loaded.name}: http://{host if ':' not in host else f'[{host}]'}:{port}/ (Ctrl-C stops)"
    )
    serve_dashboard(loaded, host, port)
