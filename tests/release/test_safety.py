"""Safety on SQLite and PostgreSQL: simultaneous approvals deploy once; a killed deployment resumes, never twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import build
from sqlalchemy import func, select

from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release import Ledger, Releases
from conveyor.release.tables import AuditEntryRow, DeploymentRow, DeploymentStepRow

pytestmark = [pytest.mark.services, pytest.mark.slow]

KILLER = """
import os, signal, sys
from conveyor.config import load_project
from conveyor.release import Releases
from conveyor.release.releases import Releases as Desk

record = Desk._record_step

def record_then_die(self, *args):
    record(self, *args)
    if args[4] == sys.argv[3]:
        os.kill(os.getpid(), signal.SIGKILL)

Desk._record_step = record_then_die
Releases(load_project(sys.argv[1])).approve(int(sys.argv[2]), actor="bob")
"""


def _twin(desk: Releases) -> Releases:
    """The same project and ledger through a second engine, as a second person's process would have."""
    url = desk.ledger.engine.url.render_as_string(hide_password=False)
    return Releases(desk.project, Ledger.from_url(url, clock=desk.ledger.clock))


def _at_once(calls: list[Callable[[], object]]) -> list[object]:
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # collected and asserted below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _count(desk: Releases, release_id: int, action: str) -> int:
    with desk.ledger.sessions() as session:
        return session.execute(
            select(func.count()).where(AuditEntryRow.action == action, AuditEntryRow.subject == f"release:{release_id}")
        ).scalar_one()


def _steps(desk: Releases, release_id: int) -> list[str]:
    with desk.ledger.sessions() as session:
        deployments = list(
            session.execute(select(DeploymentRow).where(DeploymentRow.release_id == release_id)).scalars()
        )
        assert len(deployments) <= 1
        if not deployments:
            return []
        return list(
            session.execute(
                select(DeploymentStepRow.name)
                .where(DeploymentStepRow.deployment_id == deployments[0].id)
                .order_by(DeploymentStepRow.id)
            ).scalars()
        )


@pytest.mark.parametrize("needed", [1, 2])
def test_two_approvers_at_the_same_moment_deploy_exactly_once(desk: Releases, needed: int) -> None:
    stages = desk.project.config.release
    stages["prod"] = stages["prod"].model_copy(update={"min_approvals": needed})
    qa = desk.create(build(desk, f"race-{needed}"), "qa", actor="carol")
    pending = desk.promote(qa.id, "prod", actor="carol")
    other = _twin(desk)
    results = _at_once(
        [lambda: desk.approve(pending.id, actor="alice"), lambda: other.approve(pending.id, actor="bob")]
    )
    if needed == 1:
        refused = [r for r in results if isinstance(r, CheckFailed)]
        assert len(refused) == 1 and "only a pending release" in str(refused[0]), results
    else:
        assert not any(isinstance(r, Exception) for r in results), results
    assert desk.show(pending.id).status == "live"
    assert _count(desk, pending.id, "release.approved") == 1
    assert _steps(desk, pending.id) == ["push", "check-digest", "alias"]
    assert _count(desk, pending.id, "release.live") == 1
    assert _count(desk, pending.id, "deployment.started") == 1
    assert desk.ledger.verify_audit().ok


def _kill_during_deploy(desk: Releases, label: str, after_step: str) -> int:
    qa = desk.create(build(desk, label), "qa", actor="carol")
    pending = desk.promote(qa.id, "prod", actor="carol")
    desk.approve(pending.id, actor="alice")
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(desk.project.root), str(pending.id), after_step],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONVEYOR_LEDGER_URL": desk.ledger.engine.url.render_as_string(hide_password=False)},
    )
    assert done.returncode == -9, done.stderr[-2000:]
    return pending.id


def test_a_deployment_killed_half_way_resumes_and_never_deploys_twice(desk: Releases) -> None:
    release_id = _kill_during_deploy(desk, "killed", "push")
    view = desk.show(release_id)
    assert view.status == "deploying"
    assert _steps(desk, release_id) == ["push"]
    with pytest.raises(CheckFailed, match="cannot be deployed now"):
        desk.deploy(release_id, actor="alice")

    other = _twin(desk)
    results = _at_once([lambda: desk.resume(release_id, actor="alice"), lambda: other.resume(release_id, actor="bob")])
    live = [r for r in results if getattr(r, "status", None) == "live"]
    refused = [r for r in results if isinstance(r, CheckFailed)]
    assert len(live) == 1 and len(refused) == 1, results
    assert _steps(desk, release_id) == ["push", "check-digest", "alias"]
    assert _count(desk, release_id, "deployment.resumed") == 1
    assert _count(desk, release_id, "release.live") == 1
    with pytest.raises(CheckFailed, match="never deployed twice"):
        desk.resume(release_id, actor="alice")
    assert desk.ledger.verify_audit().ok


def test_a_resumed_deployment_refuses_an_image_changed_in_the_registry(desk: Releases) -> None:
    release_id = _kill_during_deploy(desk, "swapped", "push")
    with desk.ledger.sessions() as session:
        step = session.execute(select(DeploymentStepRow).where(DeploymentStepRow.name == "push")).scalars().all()[-1]
        reference = json.loads(step.detail)["reference"]
    impostor = json.loads(build(desk, "impostor").read_text())["image"]["archive"]
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{impostor}", f"docker://{reference}"],
        check=True,
        capture_output=True,
    )
    with pytest.raises(CheckFailed, match="not the tested"):
        desk.resume(release_id, actor="alice")
    view = desk.show(release_id)
    assert view.status == "failed" and "not the tested" in (view.error or "")
    assert _steps(desk, release_id) == ["push"]
    assert desk.history("prod") == []


def test_resume_refuses_while_the_deployer_still_runs(make_project: Callable[..., Path]) -> None:
    project = load_project(make_project(min_approvals=1))
    desk = Releases(project)
    qa = desk.create(build(desk, "busy"), "qa", actor="carol")
    pending = desk.promote(qa.id, "prod", actor="carol")
    with desk.ledger.transaction() as session:
        from conveyor.release.tables import ReleaseRow

        row = session.get(ReleaseRow, pending.id)
        assert row is not None
        row.status, row.deployer = "deploying", f"{os.uname().nodename}:{os.getpid()}:abcd"
    with pytest.raises(CheckFailed, match="being deployed right now"):
        desk.resume(pending.id, actor="alice")
