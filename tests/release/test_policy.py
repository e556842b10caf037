"""Every policy rule of a stage, against real registries and a real MLflow registry (SQLite ledger)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import FakeClock, alias_version, build, tamper_layer

from conveyor.config import load_project
from conveyor.errors import CheckFailed, ConfigError, ConveyorError, NotFoundError
from conveyor.release import Ledger, PolicyRefused, Releases, current_actor
from conveyor.release import verification as release_verification

pytestmark = pytest.mark.services


def registry_digest(reference: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def in_qa(desk: Releases, label: str, **kwargs: object) -> int:
    return desk.create(build(desk, label, **kwargs), "qa", actor="carol").id


def test_qa_release_pushes_the_tested_image_by_digest_and_sets_the_alias(
    sqlite_desk: Releases, mlflow_registry: str
) -> None:
    path = build(sqlite_desk, "qa-push", model_version="2")
    tested = json.loads(path.read_text())["image"]["digest"]
    release = sqlite_desk.create(path, "qa", actor="carol")
    assert release.status == "live"
    assert release.deployment is not None
    assert release.deployment["steps"] == ["push", "check-digest", "alias"]
    reference = release.deployment["reference"]
    assert reference.endswith(f"@{tested}")
    tag = f"v2-r{release.id}"
    host_repo = reference.split("@")[0]
    assert registry_digest(f"{host_repo}:{tag}") == tested
    assert alias_version(mlflow_registry, "qa") == "2"
    assert release.requested_by == "carol"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tests_ok": False}, "failed its tests"),
        ({"gates_ok": False}, "failed its gates"),
        ({"tests_ok": None}, "has not been tested"),
        ({"gates_ok": None}, "has not been through the gates"),
    ],
)
def test_untested_or_failing_builds_are_refused(sqlite_desk: Releases, kwargs: dict, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        in_qa(sqlite_desk, "refused", **kwargs)
    assert sqlite_desk.list() == []


def test_tampered_image_and_package_are_refused(sqlite_desk: Releases) -> None:
    path = build(sqlite_desk, "tampered-image")
    tamper_layer(Path(json.loads(path.read_text())["image"]["archive"]))
    with pytest.raises(CheckFailed, match="is damaged"):
        sqlite_desk.create(path, "qa", actor="carol")
    other = build(sqlite_desk, "tampered-package")
    package = Path(json.loads(other.read_text())["package"]["dir"])
    (package / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return 'evil'\n")
    with pytest.raises(CheckFailed, match=r"does not match its manifest:\n  score\.py changed"):
        sqlite_desk.create(other, "qa", actor="carol")
    assert sqlite_desk.list() == []


def test_without_the_package_check_nothing_is_released(sqlite_desk: Releases, monkeypatch: pytest.MonkeyPatch) -> None:
    """The product path calls conveyor.package.verify_build; when it is missing the release stops, clearly."""
    import conveyor.package

    monkeypatch.delattr(conveyor.package, "verify_build", raising=False)
    with pytest.raises(ConveyorError, match="verify_build is not available"):
        release_verification.package_verifier()


def test_prod_requires_the_build_to_have_been_in_qa(sqlite_desk: Releases) -> None:
    path = build(sqlite_desk, "not-in-qa")
    with pytest.raises(PolicyRefused, match="has not been deployed to qa"):
        sqlite_desk.create(path, "prod", actor="carol")


def test_approval_rules_then_deploy_to_prod(sqlite_desk: Releases, mlflow_registry: str) -> None:
    desk = sqlite_desk
    qa = in_qa(desk, "to-prod", model_version="3")
    pending = desk.promote(qa, "prod", actor="carol")
    assert (pending.status, pending.kind, pending.source_release) == ("pending", "promotion", qa)
    assert pending.min_approvals == 2 and pending.deployment is None

    with pytest.raises(PolicyRefused, match="erin is not an approver of prod"):
        desk.approve(pending.id, actor="erin")
    with pytest.raises(PolicyRefused, match="reject"):
        desk.reject(pending.id, actor="erin")

    desk.project.config.release["prod"].approvers.append("carol")
    with pytest.raises(PolicyRefused, match="carol requested this release and may not approve it"):
        desk.approve(pending.id, actor="carol")
    desk.project.config.release["prod"].approvers.remove("carol")

    one = desk.approve(pending.id, actor="alice", comment="numbers look right")
    assert one.status == "pending" and one.approved_by == ["alice"]
    with pytest.raises(PolicyRefused, match="alice already decided"):
        desk.approve(pending.id, actor="alice")

    done = desk.approve(pending.id, actor="bob")
    assert done.status == "live"
    assert done.approved_by == ["alice", "bob"]
    assert done.approvals[0]["comment"] == "numbers look right"
    assert registry_digest(done.deployment["reference"]) == done.image_digest
    assert alias_version(mlflow_registry, "prod") == "3"
    with pytest.raises(CheckFailed, match="only a pending release"):
        desk.approve(pending.id, actor="dave")
    with pytest.raises(ConveyorError, match="already a release to prod"):
        desk.promote(pending.id, "prod", actor="carol")


def test_requester_may_approve_when_the_policy_allows(make_project: Callable[..., Path], clock: FakeClock) -> None:
    project = load_project(make_project(min_approvals=1, requester_may_approve=True))
    desk = Releases(project, Ledger.open(project, clock=clock))
    qa = in_qa(desk, "self-approve")
    pending = desk.promote(qa, "prod", actor="alice")
    assert desk.approve(pending.id, actor="alice").status == "live"


def test_reject_stops_a_release_for_good(sqlite_desk: Releases) -> None:
    pending = sqlite_desk.promote(in_qa(sqlite_desk, "rejected"), "prod", actor="carol")
    rejected = sqlite_desk.reject(pending.id, actor="dave", comment="wrong data")
    assert rejected.status == "rejected" and rejected.deployment is None
    with pytest.raises(CheckFailed, match="is rejected"):
        sqlite_desk.approve(pending.id, actor="alice")


def test_withdrawn_by_its_requester(sqlite_desk: Releases) -> None:
    pending = sqlite_desk.promote(in_qa(sqlite_desk, "withdrawn"), "prod", actor="carol")
    assert sqlite_desk.reject(pending.id, actor="carol").status == "rejected"


def test_an_approval_after_the_timeout_is_refused_and_the_release_expires(
    sqlite_desk: Releases, clock: FakeClock
) -> None:
    pending = sqlite_desk.promote(in_qa(sqlite_desk, "expiring"), "prod", actor="carol")
    sqlite_desk.approve(pending.id, actor="alice")
    clock.advance(days=1, hours=23)
    assert sqlite_desk.show(pending.id).status == "pending"
    clock.advance(hours=1, seconds=1)
    assert sqlite_desk.show(pending.id).status == "expired"
    with pytest.raises(CheckFailed, match="expired"):
        sqlite_desk.approve(pending.id, actor="bob")
    view = sqlite_desk.show(pending.id)
    assert view.status == "expired" and view.deployment is None
    assert [e.action for e in sqlite_desk.ledger.audit_entries()][-1] == "release.expired"


def test_rollback_and_history(sqlite_desk: Releases, clock: FakeClock, mlflow_registry: str) -> None:
    desk = sqlite_desk
    lives = []
    for version in ("1", "2"):
        qa = in_qa(desk, f"history-{version}", model_version=version)
        clock.advance(hours=1)
        pending = desk.promote(qa, "prod", actor="carol")
        desk.approve(pending.id, actor="alice")
        lives.append(desk.approve(pending.id, actor="bob"))
        clock.advance(hours=1)
    assert alias_version(mlflow_registry, "prod") == "2"

    with pytest.raises(PolicyRefused, match="only its approvers"):
        desk.rollback("prod", actor="carol")
    back = desk.rollback("prod", actor="dave")
    assert (back.kind, back.status, back.source_release, back.build) == (
        "rollback",
        "live",
        lives[0].id,
        lives[0].build,
    )
    assert alias_version(mlflow_registry, "prod") == "1"
    assert registry_digest(back.deployment["reference"]) == lives[0].image_digest
    assert desk.show(lives[1].id).status == "superseded"

    entries = desk.history("prod")
    assert [(e.release, e.kind) for e in entries] == [
        (lives[0].id, "promotion"),
        (lives[1].id, "promotion"),
        (back.id, "rollback"),
    ]
    assert entries[0].approved_by == ["alice", "bob"] and entries[0].requested_by == "carol"
    assert entries[2].deployed_by == "dave" and entries[2].live_until is None
    assert entries[0].live_until == entries[1].live_from
    at = entries[1].live_from.isoformat() + "Z"
    assert [e.release for e in desk.history("prod", at=at)] == [lives[1].id]
    assert desk.history("prod", at="2000-01-01") == []

    clock.advance(minutes=5)
    forward = desk.rollback("prod", to=lives[1].id, actor="alice")
    assert forward.build == lives[1].build and alias_version(mlflow_registry, "prod") == "2"
    with pytest.raises(CheckFailed, match="never live in prod"):
        desk.rollback("prod", to=9999, actor="alice")


def test_builds_by_digest_prefix(sqlite_desk: Releases) -> None:
    path = build(sqlite_desk, "by-digest")
    digest = json.loads(path.read_text())["package"]["digest"]
    release = sqlite_desk.create(digest.removeprefix("sha256:")[:10], "qa", actor="carol")
    assert release.build == digest
    with pytest.raises(NotFoundError, match="no build with digest"):
        sqlite_desk.create("abcdef0123", "qa", actor="carol")
    with pytest.raises(NotFoundError):
        sqlite_desk.create("not-a-build", "qa", actor="carol")


def test_unknown_stage_and_impossible_policy(make_project: Callable[..., Path], clock: FakeClock) -> None:
    project = load_project(make_project())
    desk = Releases(project, Ledger.open(project, clock=clock))
    with pytest.raises(ConfigError, match="stage 'staging' is not declared"):
        desk.create(build(desk, "nowhere"), "staging", actor="carol")
    project.config.release["prod"].approvers.clear()
    with pytest.raises(ConfigError, match="min_approvals = 2 but only 0 approvers"):
        desk.create(build(desk, "x"), "prod", actor="carol")


def test_the_acting_person(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    assert current_actor() == getpass.getuser()
    monkeypatch.setenv("RELEASE_REQUESTEDFOR", "Azure Person")
    assert current_actor() == "Azure Person"
    monkeypatch.setenv("BUILD_REQUESTEDFOR", "Build Person")
    assert current_actor() == "Build Person"
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert current_actor() == "octocat"
    monkeypatch.setenv("CONVEYOR_USER", "alice")
    assert current_actor() == "alice"
    assert current_actor("bob") == "bob"
