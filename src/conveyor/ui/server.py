"""Serving the dashboard: uvicorn on one loopback address unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from conveyor.ui.app import create_app

if TYPE_CHECKING:
    from conveyor.config import Project

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

log = logging.getLogger("conveyor.ui")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers a loopback dashboard answers (None: any, for a dashboard bound to another address)."""
    if not is_loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", host}
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


def serve_dashboard(project: Project, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve `conveyor ui` until interrupted (the CLI's `conveyor ui` calls this)."""
    import uvicorn

    app = create_app(project, allowed_hosts(host, port))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run()
