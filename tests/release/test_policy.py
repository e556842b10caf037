"""Every policy rule of a stage, against real registries, a real MLflow registry and real keys (SQLite ledger)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import FakeClock, Keys, alias_version, build, tamper_layer

from conveyor.config import load_project
from conveyor.errors import CheckFailed, ConfigError, ConveyorError, NotFoundError
from conveyor.release.ledger import Ledger
from conveyor.release.policy import PolicyRefused
from conveyor.release.releases import Releases

pytestmark = pytest.mark.services


def registry_digest(reference: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        check=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def in_qa(releases: Releases, keys: Keys, label: str, **kwargs: object) -> int:
    return releases.create(build(releases, label, **kwargs), "qa", keys.carol).id


def test_qa_release_pushes_the_tested_image_by_digest_and_sets_the_alias(
    sqlite_releases: Releases, keys: Keys, mlflow_registry: str
) -> None:
    path = build(sqlite_releases, "qa-push", model_version="2")
    tested = json.loads(path.read_text())["image"]["digest"]
    release = sqlite_releases.create(path, "qa", keys.carol)
    assert release.status == "live", release.error
    assert release.deployment is not None
    assert release.deployment.steps == ["push", "check-digest", "attest", "alias"]
    reference = release.deployment.reference
    assert reference.endswith(f"@{tested}")
    host_repo = reference.split("@")[0]
    assert registry_digest(f"{host_repo}:v2-r{release.id}") == tested
    assert alias_version(mlflow_registry, "qa") == "2"
    assert release.requested_by == "carol"
    assert release.image_digest == tested
    assert [a.predicate_type.rsplit("/", 2)[-2] for a in release.attestations] == [
        "provenance",
        "test-result",
        "gate-result",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tests_ok": False}, "failed its tests"),
        ({"gates_ok": False}, "failed its gates"),
        ({"tests_ok": None}, "has no signed tests attestation"),
        ({"gates_ok": None}, "has no signed gates attestation"),
        ({"signer": "carol"}, "signed by carol, who is not a builder"),
    ],
)
def test_unattested_or_failing_builds_are_refused(
    sqlite_releases: Releases, keys: Keys, kwargs: dict, message: str
) -> None:
    with pytest.raises(CheckFailed, match=message):
        in_qa(sqlite_releases, keys, "refused", **kwargs)
    assert sqlite_releases.list() == []


def test_tampered_image_and_package_are_refused_at_deploy(sqlite_releases: Releases, keys: Keys) -> None:
    path = build(sqlite_releases, "tampered-image")
    tamper_layer(Path(json.loads(path.read_text())["image"]["archive"]))
    with pytest.raises(CheckFailed, match="is damaged"):
        sqlite_releases.create(path, "qa", keys.carol)


def test_prod_requires_the_build_to_have_been_in_qa(sqlite_releases: Releases, keys: Keys) -> None:
    path = build(sqlite_releases, "not-in-qa")
    with pytest.raises(PolicyRefused, match="has not been deployed to qa"):
        sqlite_releases.create(path, "prod", keys.carol)


def test_approval_rules_then_deploy_to_prod(sqlite_releases: Releases, keys: Keys, mlflow_registry: str) -> None:
    releases = sqlite_releases
    qa = in_qa(releases, keys, "to-prod", model_version="3")
    pending = releases.promote(qa, "prod", keys.carol)
    assert (pending.status, pending.kind, pending.source_release) == ("pending", "promotion", qa)
    assert pending.min_approvals == 2 and pending.deployment is None
    assert list(pending.policy.approvers) == ["alice", "bob", "dave"]

    with pytest.raises(PolicyRefused, match="erin is not an approver of prod"):
        releases.approve(pending.id, keys.erin)
    with pytest.raises(PolicyRefused, match="reject"):
        releases.reject(pending.id, keys.erin)

    one = releases.approve(pending.id, keys.alice, "numbers look right")
    assert one.status == "pending" and one.approved_by == ["alice"]
    with pytest.raises(PolicyRefused, match="alice already decided"):
        releases.approve(pending.id, keys.alice)

    done = releases.approve(pending.id, keys.bob)
    assert done.status == "live", done.error
    assert done.approved_by == ["alice", "bob"]
    assert done.approvals[0].comment == "numbers look right"
    assert done.approvals[0].key == keys.alice.fingerprint
    assert registry_digest(done.deployment.reference) == done.image_digest
    assert alias_version(mlflow_registry, "prod") == "3"
    assert {s.by for s in done.signers} == {"carol", "alice", "bob"}
    assert done.verification.ok
    with pytest.raises(CheckFailed, match="only a pending release"):
        releases.approve(pending.id, keys.dave)
    with pytest.raises(ConveyorError, match="already a release to prod"):
        releases.promote(pending.id, "prod", keys.carol)


def test_the_requester_cannot_approve_their_own_release(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys
) -> None:
    project = load_project(make_project(min_approvals=1))
    releases = Releases(project, Ledger.open(project, clock=clock))
    pending = releases.promote(in_qa(releases, keys, "own"), "prod", keys.alice)
    with pytest.raises(PolicyRefused, match=r"alice requested release \d+ and may not approve it"):
        releases.approve(pending.id, keys.alice)
    assert releases.show(pending.id).status == "pending"


def test_requester_may_approve_when_the_policy_allows(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys
) -> None:
    project = load_project(make_project(min_approvals=1, requester_may_approve=True))
    releases = Releases(project, Ledger.open(project, clock=clock))
    pending = releases.promote(in_qa(releases, keys, "self-approve"), "prod", keys.alice)
    assert releases.approve(pending.id, keys.alice).status == "live"


def test_reject_stops_a_release_for_good(sqlite_releases: Releases, keys: Keys) -> None:
    pending = sqlite_releases.promote(in_qa(sqlite_releases, keys, "rejected"), "prod", keys.carol)
    rejected = sqlite_releases.reject(pending.id, keys.dave, "wrong data")
    assert rejected.status == "rejected" and rejected.deployment is None
    with pytest.raises(CheckFailed, match="is rejected"):
        sqlite_releases.approve(pending.id, keys.alice)


def test_withdrawn_by_its_requester(sqlite_releases: Releases, keys: Keys) -> None:
    pending = sqlite_releases.promote(in_qa(sqlite_releases, keys, "withdrawn"), "prod", keys.carol)
    assert sqlite_releases.reject(pending.id, keys.carol).status == "rejected"


def test_an_approval_after_the_timeout_is_refused_and_the_release_expires(
    sqlite_releases: Releases, keys: Keys, clock: FakeClock
) -> None:
    pending = sqlite_releases.promote(in_qa(sqlite_releases, keys, "expiring"), "prod", keys.carol)
    sqlite_releases.approve(pending.id, keys.alice)
    clock.advance(days=1, hours=23)
    assert sqlite_releases.show(pending.id).status == "pending"
    clock.advance(hours=1, seconds=1)
    assert sqlite_releases.show(pending.id).status == "expired"
    with pytest.raises(CheckFailed, match="expired"):
        sqlite_releases.approve(pending.id, keys.bob)
    view = sqlite_releases.show(pending.id)
    assert view.status == "expired" and view.deployment is None


def _live_in_prod(releases: Releases, keys: Keys, clock: FakeClock, version: str) -> int:
    qa = in_qa(releases, keys, f"history-{version}", model_version=version)
    clock.advance(hours=1)
    pending = releases.promote(qa, "prod", keys.carol)
    releases.approve(pending.id, keys.alice)
    live = releases.approve(pending.id, keys.bob)
    assert live.status == "live", live.error
    clock.advance(hours=1)
    return live.id


def test_rollback_is_a_release_that_needs_approvals(
    sqlite_releases: Releases, keys: Keys, clock: FakeClock, mlflow_registry: str
) -> None:
    releases = sqlite_releases
    lives = [_live_in_prod(releases, keys, clock, version) for version in ("1", "2")]
    assert alias_version(mlflow_registry, "prod") == "2"

    back = releases.rollback("prod", key=keys.alice)
    assert (back.kind, back.status, back.source_release) == ("rollback", "pending", lives[0])
    assert back.min_approvals == 2 and not back.break_glass
    assert alias_version(mlflow_registry, "prod") == "2"
    with pytest.raises(PolicyRefused, match="alice requested release"):
        releases.approve(back.id, keys.alice)
    releases.approve(back.id, keys.dave)
    done = releases.approve(back.id, keys.bob)
    assert done.status == "live" and done.build == releases.show(lives[0]).build
    assert alias_version(mlflow_registry, "prod") == "1"
    assert registry_digest(done.deployment.reference) == releases.show(lives[0]).image_digest
    assert releases.show(lives[1]).status == "superseded"

    entries = releases.history("prod")
    assert [(e.release, e.kind) for e in entries] == [
        (lives[0], "promotion"),
        (lives[1], "promotion"),
        (back.id, "rollback"),
    ]
    assert entries[0].approved_by == ["alice", "bob"] and entries[0].requested_by == "carol"
    assert entries[2].deployed_by == "bob" and entries[2].live_until is None
    assert entries[0].live_until == entries[1].live_from
    assert len(entries[0].attestations) == 3 and all(e.verification.ok for e in entries)
    at = entries[1].live_from.isoformat() + "Z"
    assert [e.release for e in releases.history("prod", at=at)] == [lives[1]]
    assert releases.history("prod", at="2000-01-01") == []
    with pytest.raises(CheckFailed, match="never live in prod"):
        releases.rollback("prod", to=9999, key=keys.alice)


def test_break_glass_rollback_needs_no_approval_and_is_marked(
    sqlite_releases: Releases, keys: Keys, clock: FakeClock, mlflow_registry: str
) -> None:
    releases = sqlite_releases
    first, _second = (_live_in_prod(releases, keys, clock, version) for version in ("1", "2"))
    with pytest.raises(PolicyRefused, match="alice may not break glass in prod"):
        releases.rollback("prod", key=keys.alice, break_glass=True)
    back = releases.rollback("prod", key=keys.dave, break_glass=True)
    assert (back.status, back.break_glass, back.min_approvals, back.source_release) == ("live", True, 0, first)
    assert alias_version(mlflow_registry, "prod") == "1"
    (entry,) = [e for e in releases.history("prod") if e.release == back.id]
    assert entry.break_glass and entry.approved_by == []


def test_builds_by_digest_prefix(sqlite_releases: Releases, keys: Keys) -> None:
    path = build(sqlite_releases, "by-digest")
    digest = json.loads(path.read_text())["package"]["digest"]
    release = sqlite_releases.create(digest.removeprefix("sha256:")[:10], "qa", keys.carol)
    assert release.build == digest
    with pytest.raises(NotFoundError, match="no build"):
        sqlite_releases.create("abcdef0123", "qa", keys.carol)


def test_unknown_stage_and_impossible_policy(make_project: Callable[..., Path], clock: FakeClock, keys: Keys) -> None:
    project = load_project(make_project())
    releases = Releases(project, Ledger.open(project, clock=clock))
    with pytest.raises(ConfigError, match="stage 'staging' is not declared"):
        releases.create(build(releases, "nowhere"), "staging", keys.carol)
    project.config.release["prod"].approvers.clear()
    with pytest.raises(ConfigError, match="min_approvals = 2 but only 0 approvers"):
        releases.create(build(releases, "x"), "qa", keys.carol)
