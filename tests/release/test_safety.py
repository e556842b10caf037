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
from release_support import Keys, build

from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases

pytestmark = [pytest.mark.services, pytest.mark.slow]

KILLER = """
import os, signal, sys
from pathlib import Path
from conveyor.config import load_project
from conveyor.release.deployment import Deployment
from conveyor.release.releases import Releases

record = Deployment.record

def record_then_die(self, name, result):
    record(self, name, result)
    if name == sys.argv[3]:
        os.kill(os.getpid(), signal.SIGKILL)

Deployment.record = record_then_die
Releases(load_project(sys.argv[1])).approve(int(sys.argv[2]), Path(sys.argv[4]))
"""


def _twin(releases: Releases) -> Releases:
    """The same project and ledger through a second engine, as a second person's process would have."""
    url = releases.ledger.engine.url.render_as_string(hide_password=False)
    return Releases(releases.project, Ledger.from_url(url, clock=releases.ledger.clock))


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


def _events(releases: Releases, release_id: int, kind: str) -> list[dict]:
    """The data of the release's events of one kind (from the stored payloads, after verifying the chain)."""
    assert releases.ledger.verify_audit().ok
    found = []
    for row in releases.ledger.events(release=release_id):
        if row.kind == kind:
            found.append(json.loads(row.payload)["data"])
    return found


def _steps(releases: Releases, release_id: int) -> list[str]:
    return [data["name"] for data in _events(releases, release_id, "deployment.step")]


@pytest.mark.parametrize("needed", [1, 2])
def test_two_approvers_at_the_same_moment_deploy_exactly_once(
    make_project: Callable[..., Path], backend: str, keys: Keys, needed: int
) -> None:
    project = load_project(make_project(min_approvals=needed, ledger_url=None if backend == "sqlite" else backend))
    releases = Releases(project, Ledger.open(project))
    qa = releases.create(build(releases, f"race-{needed}"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    other = _twin(releases)
    results = _at_once([lambda: releases.approve(pending.id, keys.alice), lambda: other.approve(pending.id, keys.bob)])
    if needed == 1:
        refused = [r for r in results if isinstance(r, CheckFailed)]
        assert len(refused) == 1 and "only a pending release" in str(refused[0]), results
    else:
        assert not any(isinstance(r, Exception) for r in results), results
    assert releases.show(pending.id).status == "live"
    assert len(_events(releases, pending.id, "release.approved")) == needed
    assert _steps(releases, pending.id) == ["push", "check-digest", "attest", "alias"]
    assert len(_events(releases, pending.id, "release.live")) == 1
    assert len(_events(releases, pending.id, "deployment.claimed")) == 1


def _kill_during_deploy(releases: Releases, keys: Keys, label: str, after_step: str) -> int:
    qa = releases.create(build(releases, label), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    releases.approve(pending.id, keys.alice)
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(releases.project.root), str(pending.id), after_step, str(keys.path("bob"))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONVEYOR_LEDGER_URL": releases.ledger.engine.url.render_as_string(hide_password=False)},
    )
    assert done.returncode == -9, done.stderr[-2000:]
    return pending.id


def test_a_deployment_killed_half_way_resumes_and_never_deploys_twice(releases: Releases, keys: Keys) -> None:
    release_id = _kill_during_deploy(releases, keys, "killed", "push")
    view = releases.show(release_id)
    assert view.status == "deploying"
    assert _steps(releases, release_id) == ["push"]
    with pytest.raises(CheckFailed, match="cannot be deployed now"):
        releases.deploy(release_id, keys.alice)

    other = _twin(releases)
    results = _at_once([lambda: releases.resume(release_id, keys.alice), lambda: other.resume(release_id, keys.dave)])
    live = [r for r in results if getattr(r, "status", None) == "live"]
    refused = [r for r in results if isinstance(r, CheckFailed)]
    assert len(live) == 1 and len(refused) == 1, results
    assert _steps(releases, release_id) == ["push", "check-digest", "attest", "alias"]
    claims = _events(releases, release_id, "deployment.claimed")
    assert [c["resume"] for c in claims] == [False, True]
    assert len(_events(releases, release_id, "release.live")) == 1
    with pytest.raises(CheckFailed, match="never deployed twice"):
        releases.resume(release_id, keys.alice)
    signers = {s.event: s.by for s in releases.show(release_id).signers}
    assert signers["release.requested"] == "carol" and signers["release.live"] in ("alice", "dave")


def test_a_resumed_deployment_refuses_an_image_changed_in_the_registry(releases: Releases, keys: Keys) -> None:
    release_id = _kill_during_deploy(releases, keys, "swapped", "push")
    (push,) = [d for d in _events(releases, release_id, "deployment.step") if d["name"] == "push"]
    reference = push["result"]["reference"]
    impostor = json.loads(build(releases, "impostor").read_text())["image"]["archive"]
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{impostor}", f"docker://{reference}"],
        check=True,
        capture_output=True,
    )
    with pytest.raises(CheckFailed, match="not the tested"):
        releases.resume(release_id, keys.alice)
    view = releases.show(release_id)
    assert view.status == "failed" and "not the tested" in (view.error or "")
    assert _steps(releases, release_id) == ["push"]
    assert releases.history("prod") == []


def test_resume_refuses_while_the_deployer_still_runs(make_project: Callable[..., Path], keys: Keys) -> None:
    from conveyor.release.deployment import Deployment
    from conveyor.release.status import EventKind, ReleaseStatus

    project = load_project(make_project(min_approvals=1))
    releases = Releases(project)
    qa = releases.create(build(releases, "busy"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    identity = releases.identity(keys.alice)
    busy = Deployment(project, releases.ledger, identity, pending.id, f"{os.uname().nodename}:{os.getpid()}:abcd")
    releases._decide(pending.id, identity, EventKind.RELEASE_APPROVED, None)  # approved, not yet deployed
    busy.claim(resume=False, force=False)
    assert releases.show(pending.id).status == ReleaseStatus.DEPLOYING
    with pytest.raises(CheckFailed, match="being deployed right now"):
        releases.resume(pending.id, keys.bob)
