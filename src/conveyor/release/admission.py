"""Whether a `local://` stage's forwarder may take a route: only to what a verified ledger event names.

The route file is unsigned; anyone who can write it could point the stage's port at another server. So the
forwarder takes a route only when the project's ledger verifies, the route's release belongs to the stage and is
being deployed or live, the port is the one its signed `start` step recorded, and the server there says it serves
the package digest that release's signed request shipped.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.config import load_project
from conveyor.errors import ConveyorError
from conveyor.release.ledger import Ledger
from conveyor.release.routes import NotServing, Route, served_package
from conveyor.release.status import ReleaseStatus

ROUTABLE = (ReleaseStatus.DEPLOYING, ReleaseStatus.LIVE)


def refusal(project_root: Path, stage: str, route: Route) -> str | None:
    """Why the forwarder of `stage` must not take `route`, or None when the verified ledger names it."""
    try:
        project = load_project(project_root)
        ledger = Ledger.open(project)
        try:
            verified = ledger.verified()
        finally:
            ledger.close()
    except ConveyorError as exc:
        return f"the ledger could not be read: {exc.message}"
    if not verified.report.ok:
        return f"the ledger does not verify ({verified.report.problem or 'see conveyor audit verify'})"
    release = verified.state.releases.get(route.release)
    if release is None or release.stage != stage:
        return f"the ledger has no release {route.release} of stage {stage}"
    if release.status not in ROUTABLE:
        return f"release {route.release} is {release.status}, not being deployed or live"
    start = release.deployment.steps.get("start") if release.deployment else None
    if start is None or start.url != f"http://127.0.0.1:{route.port}":
        recorded = start.url if start else "none"
        return f"port {route.port} is not the server the ledger recorded for release {route.release} ({recorded})"
    expected = release.shipment.package_digest
    if route.digest != expected:
        return f"the route names package {route.digest}, but release {route.release} ships {expected}"
    try:
        served = served_package(route.port)
    except NotServing as why:
        return f"the server on port {route.port} is not ready ({why})"
    if served != expected:
        return f"the server on port {route.port} serves package {served or 'unnamed'}, not {expected}"
    return None
