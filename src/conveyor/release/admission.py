"""Whether a `local://` stage's forwarder may take a route: only to what a verified ledger event names.

The route file is unsigned; anyone who can write it could point the stage's port at another server. So the
forwarder takes a route only when the project's ledger verifies, the route's release belongs to the stage and is
being deployed or live, the port is the one its signed `start` step recorded, and the server there says it serves
the package digest that release's signed request shipped. A rollout's candidate is held to the same, and to the
mode and weight in effect in the ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.config import load_project
from conveyor.errors import ConveyorError
from conveyor.release.ledger import Ledger
from conveyor.release.routes import NotServing, Route, Split, served_package
from conveyor.release.status import ReleaseStatus

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.release.state import LedgerState

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
    refused = _serves(route.port, route.release, route.digest, release.shipment.package_digest)
    if refused is None and route.split is not None:
        return _split_refusal(verified.state, stage, route.split)
    return refused


def _serves(port: int, release: int, digest: str, expected: str) -> str | None:
    if digest != expected:
        return f"the route names package {digest}, but release {release} ships {expected}"
    try:
        served = served_package(port)
    except NotServing as why:
        return f"the server on port {port} is not ready ({why})"
    if served != expected:
        return f"the server on port {port} serves package {served or 'unnamed'}, not {expected}"
    return None


def _split_refusal(state: LedgerState, stage: str, split: Split) -> str | None:
    """A rollout's candidate is routed to only as the ledger holds it: the stage's rollout, its mode, the weight
    in effect (a change waiting for approval is not), its recorded server."""
    release = state.releases.get(split.release)
    rollout = release.rollout if release is not None else None
    if release is None or rollout is None or state.rollouts.get(stage) != split.release:
        return f"the ledger has no rollout of release {split.release} in {stage}"
    if release.status not in (ReleaseStatus.DEPLOYING, ReleaseStatus.ROLLING_OUT) or rollout.ended_at is not None:
        return f"release {split.release} is {release.status}, not rolling out"
    if split.mode != rollout.mode or split.weight != rollout.weight:
        return (
            f"the route asks for {split.mode} at {split.weight}%, but the ledger holds release {split.release}'s "
            f"rollout as {rollout.mode} at {rollout.weight}%"
        )
    start = release.deployment.steps.get("start") if release.deployment else None
    if start is None or start.url != f"http://127.0.0.1:{split.port}":
        return f"port {split.port} is not the server the ledger recorded for release {split.release}"
    return _serves(split.port, split.release, split.digest, release.shipment.package_digest)
