"""Gated releases: the ledger, stage policies, approvals, deployments to OCI registries or local servers, rollback.

Python API (the CLI calls the same functions):

    from conveyor.release import Ledger, create_release, promote, approve, reject, rollback, resume, history
    ledger = Ledger.open(project)                      # SQLite in .conveyor/ledger.db, or [ledger] url
    r = create_release(project, "ab12cd", to="qa", actor="carol")   # deploys at once (no approvals in qa)
    p = promote(project, r.id, to="prod", actor="carol")            # pending
    approve(project, p.id, actor="alice")                           # deploys once min_approvals are in
    rollback(project, "prod", actor="alice")
    history(project, "prod")
"""

from __future__ import annotations

import os
from datetime import datetime

from conveyor.config import Project
from conveyor.package.record import BuildRecord, find_build
from conveyor.release.actor import current_actor
from conveyor.release.audit import ChainReport
from conveyor.release.ledger import Ledger, ledger_url
from conveyor.release.policy import PolicyRefused, ReleasePolicy
from conveyor.release.releases import HistoryEntry, Releases, ReleaseView

__all__ = [
    "BuildRecord",
    "ChainReport",
    "HistoryEntry",
    "Ledger",
    "PolicyRefused",
    "ReleasePolicy",
    "ReleaseView",
    "Releases",
    "approve",
    "create_release",
    "current_actor",
    "find_build",
    "history",
    "ledger_url",
    "list_releases",
    "promote",
    "reject",
    "resume",
    "rollback",
    "show_release",
    "verify_audit",
]


def create_release(
    project: Project, build: str | os.PathLike[str], to: str, actor: str | None = None, *, ledger: Ledger | None = None
) -> ReleaseView:
    """Request a tested build (build.json path or package digest prefix) in stage `to`."""
    return Releases(project, ledger).create(build, to, actor)


def promote(
    project: Project, release: int, to: str, actor: str | None = None, *, ledger: Ledger | None = None
) -> ReleaseView:
    """Request the build of deployed release `release` in stage `to`."""
    return Releases(project, ledger).promote(release, to, actor)


def approve(
    project: Project,
    release: int,
    actor: str | None = None,
    comment: str | None = None,
    *,
    ledger: Ledger | None = None,
) -> ReleaseView:
    return Releases(project, ledger).approve(release, actor, comment)


def reject(
    project: Project,
    release: int,
    actor: str | None = None,
    comment: str | None = None,
    *,
    ledger: Ledger | None = None,
) -> ReleaseView:
    return Releases(project, ledger).reject(release, actor, comment)


def rollback(
    project: Project, stage: str, to: int | None = None, actor: str | None = None, *, ledger: Ledger | None = None
) -> ReleaseView:
    return Releases(project, ledger).rollback(stage, to, actor)


def resume(
    project: Project, release: int, actor: str | None = None, *, force: bool = False, ledger: Ledger | None = None
) -> ReleaseView:
    return Releases(project, ledger).resume(release, actor, force=force)


def history(
    project: Project, stage: str, at: datetime | str | None = None, *, ledger: Ledger | None = None
) -> list[HistoryEntry]:
    return Releases(project, ledger).history(stage, at)


def list_releases(
    project: Project, stage: str | None = None, status: str | None = None, *, ledger: Ledger | None = None
) -> list[ReleaseView]:
    return Releases(project, ledger).list(stage, status)


def show_release(project: Project, release: int, *, ledger: Ledger | None = None) -> ReleaseView:
    return Releases(project, ledger).show(release)


def verify_audit(project: Project, *, ledger: Ledger | None = None) -> ChainReport:
    return (ledger or Ledger.open(project)).verify_audit()
