"""Deploying an approved release: claim it, run its target's steps and the alias step, go live; each a signed event.
(A rollout runs its target's rollout steps and starts serving beside the live release instead; once its completion
is approved, the same deployment runs the remaining steps and goes live.)

A deployment is claimed by a signed event naming an owner token (host, pid, nonce); the rules let only an approved
release be claimed, or, on resume, one whose deployer is gone. Each finished step is recorded at once, so a
deployment killed half-way resumes with the steps not yet recorded and never deploys twice. Whatever goes wrong in
a step, the release is marked failed with the error recorded. Steps ship only what the release's signed request
recorded (`Shipment`), never what build.json says now.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.release.acting import require_in_force
from conveyor.release.alias import set_stage_alias
from conveyor.release.state import ALIAS_STEP, NotOwner, ReleaseState
from conveyor.release.status import EventKind, ReleaseStatus
from conveyor.release.targets import DeployContext, StepResult, target_for
from conveyor.release.targets.base import RolloutPlan
from conveyor.secrets.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.config import Project
    from conveyor.release.ledger import Ledger
    from conveyor.secrets import SecretStore
    from conveyor.trust import Identity


def owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(token: str) -> bool:
    """Whether the process named by a deployer token still runs (unknowable for another host: assumed yes)."""
    host, _, rest = token.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


class TakenOver(CheckFailed):
    """Another deployment claimed the release meanwhile; this one stops without touching it."""


@dataclass
class Deployment:
    """One run of a release's deployment by `identity`, under owner `token`."""

    project: Project
    ledger: Ledger
    identity: Identity
    release_id: int
    token: str

    def claim(self, *, resume: bool, force: bool) -> ReleaseState:
        """Record the claim (the rules refuse a release that is not approved, or not resumable)."""
        with self.ledger.writing() as writer:
            require_in_force(self.identity, writer.state.in_force())
            release = writer.state.release(self.release_id)
            owner = release.deployment.owner if release.deployment else None
            if resume and release.status == ReleaseStatus.DEPLOYING and owner and owner_alive(owner) and not force:
                raise CheckFailed(
                    f"release {self.release_id} is being deployed right now by {owner.rsplit(':', 1)[0]}",
                    hint="Wait for it; if that process is gone (another machine), resume with --force.",
                )
            data = {"token": self.token, "resume": resume, "previous": owner, "force": force}
            writer.append(EventKind.DEPLOYMENT_CLAIMED, self.release_id, data, self.identity)
            return release

    def record(self, name: str, result: StepResult) -> None:
        data = {"token": self.token, "name": name, "result": result.to_dict()}
        self._append(EventKind.DEPLOYMENT_STEP, data)

    def fail(self, error: BaseException) -> None:
        first = str(error).splitlines()[0] if str(error) else ""
        message = redact(first if isinstance(error, ConveyorError) else f"{type(error).__name__}: {first}".rstrip(": "))
        self._append(EventKind.DEPLOYMENT_FAILED, {"token": self.token, "error": message})

    def go_live(self) -> None:
        self._append(EventKind.RELEASE_LIVE, {"token": self.token})

    def _append(self, kind: EventKind, data: Mapping[str, object]) -> None:
        try:
            with self.ledger.writing() as writer:
                writer.append(kind, self.release_id, dict(data), self.identity)
        except NotOwner as refused:
            raise TakenOver(refused.message) from None

    def run(self, release: ReleaseState) -> None:
        """Run the steps not yet recorded, then go live; any error marks the release failed and is raised."""
        target = target_for(release.policy.target)
        done = dict(release.deployment.steps) if release.deployment else {}
        shipment = release.shipment.found_in(self.project.state_dir)
        rollout = release.rollout
        plan = None if rollout is None else RolloutPlan(str(rollout.mode), rollout.weight)
        context = DeployContext(
            self.project.name,
            self.project.state_dir,
            release.stage,
            release.id,
            shipment,
            done,
            secret_stores=_secret_stores(self.project),
            rollout=plan,
        )
        try:
            for name in release.steps():
                if name in done:
                    continue
                if name == ALIAS_STEP:
                    result = set_stage_alias(
                        self.project, release.stage, release.policy.env, release.model_env, shipment
                    )
                else:
                    result = target.run_step(name, context)
                done[name] = result
                self.record(name, result)
        except TakenOver:
            raise
        except (Exception, KeyboardInterrupt) as exc:  # any failure: the release is failed, with the error kept
            with contextlib.suppress(TakenOver):  # the new owner records the outcome
                self.fail(exc)
            if isinstance(exc, ConveyorError):
                raise
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise CheckFailed(f"deployment of release {release.id} failed: {type(exc).__name__}: {exc}") from exc
        if rollout is not None and not rollout.completing:
            self._append(EventKind.ROLLOUT_STARTED, {"token": self.token})
        else:
            self.go_live()


def deploy(
    project: Project, ledger: Ledger, release_id: int, identity: Identity, *, resume: bool = False, force: bool = False
) -> None:
    """Claim and deploy an approved release (or, with `resume`, finish one whose deployment stopped half-way)."""
    deployment = Deployment(project, ledger, identity, release_id, owner_token())
    release = deployment.claim(resume=resume, force=force)
    deployment.run(release)


def _secret_stores(project: Project) -> tuple[SecretStore, ...]:
    """Every environment's secret store that opens here: their values must not be in what a target publishes."""
    stores = []
    for name in project.config.environments:
        with contextlib.suppress(ConveyorError):
            stores.append(project.environment(name).secrets)
    return tuple(stores)
