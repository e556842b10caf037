"""What ships is what was attested and recorded: build.json edits after testing, a swapped image archive, a copied
project file with a lowered bar, a deploy step that throws, and the stage's alias in the stage's own registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from release_support import MODEL, FakeClock, Keys, alias_version, build

from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release.ledger import Ledger
from conveyor.release.policy import PolicyRefused
from conveyor.release.releases import PolicyDiffers, Releases
from conveyor.release.shipment import Attestation, Shipment
from conveyor.release.targets.referrers import DSSE, fallback_tag

pytestmark = pytest.mark.services


def _record(path: Path) -> dict:
    return json.loads(path.read_text())


def test_build_json_with_another_builds_image_is_refused(sqlite_releases: Releases, keys: Keys) -> None:
    """The image section of a failing build copied into a passing build's build.json after testing."""
    good = build(sqlite_releases, "good")
    bad = build(sqlite_releases, "bad", tests_ok=False)
    record = _record(good)
    record["image"] = _record(bad)["image"]
    good.write_text(json.dumps(record))
    with pytest.raises(CheckFailed, match="is about other artifacts"):
        sqlite_releases.create(good, "qa", keys.carol)
    assert sqlite_releases.list() == []


def test_build_json_with_tests_ok_flipped_is_refused(sqlite_releases: Releases, keys: Keys) -> None:
    failed = build(sqlite_releases, "flipped", tests_ok=False)
    record = _record(failed)
    record["tests"] = {"ok": True, "passed": 6, "failed": 0}
    failed.write_text(json.dumps(record))
    with pytest.raises(CheckFailed, match="failed its tests: ci signed the result FAILED"):
        sqlite_releases.create(failed, "qa", keys.carol)


def test_a_deploy_ships_the_recorded_digest_never_build_json(
    sqlite_releases: Releases, keys: Keys, registries: dict[str, str]
) -> None:
    """After the prod request, build.json is pointed at another (failing) image: the deploy does not read it and
    pushes the digest the request recorded. An image archive replaced at the recorded path is refused."""
    releases = sqlite_releases
    path = build(releases, "recorded")
    qa = releases.create(path, "qa", keys.carol)
    tested = qa.image_digest
    pending = releases.promote(qa.id, "prod", keys.carol)
    other = build(releases, "other-image", tests_ok=False)
    record = _record(path)
    record["image"] = _record(other)["image"]
    path.write_text(json.dumps(record))
    releases.approve(pending.id, keys.alice)
    live = releases.approve(pending.id, keys.bob)
    assert live.status == "live" and live.image_digest == tested
    assert live.deployment is not None and live.deployment.reference.endswith(f"@{tested}")

    swapped = build(releases, "swapped-archive")
    second = releases.create(swapped, "qa", keys.carol)
    pending = releases.promote(second.id, "prod", keys.carol)
    shutil.copyfile(_record(other)["image"]["archive"], _record(swapped)["image"]["archive"])
    releases.approve(pending.id, keys.alice)
    with pytest.raises(CheckFailed, match=r"holds manifest sha256:\w+, but the ledger recorded"):
        releases.approve(pending.id, keys.bob)
    failed = releases.show(pending.id)
    assert failed.status == "failed" and "the ledger recorded" in (failed.error or "")
    assert [e.release for e in releases.history("prod")] == [live.id]


def test_attestations_are_pushed_as_referrers_of_the_image(
    sqlite_releases: Releases, keys: Keys, registries: dict[str, str]
) -> None:
    release = sqlite_releases.create(build(sqlite_releases, "referrers"), "qa", keys.carol)
    assert release.deployment is not None
    result = release.deployment.results["attest"]
    assert len(result.referrers) == 3
    host_repo = release.deployment.reference.split("@")[0]
    host, repo = host_repo.split("/", 1)
    index = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{fallback_tag(release.image_digest)}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    ).json()
    assert [m["digest"] for m in index["manifests"]] == list(result.referrers)
    layers = []
    for descriptor in index["manifests"]:
        manifest = httpx.get(
            f"http://{host}/v2/{repo}/manifests/{descriptor['digest']}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).json()
        assert manifest["subject"]["digest"] == release.image_digest and manifest["artifactType"] == DSSE
        layers.append(manifest["layers"][0]["digest"])
    assert layers == [a.digest for a in release.attestations]


def test_a_copied_project_file_cannot_lower_the_bar(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys, tmp_path: Path
) -> None:
    """A copy of conveyor.toml with min_approvals = 0, pointing at the same ledger: a fresh request under it is
    refused, and the pending release still counts against the policy recorded with it."""
    root = make_project()
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    qa = releases.create(build(releases, "lowered"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)

    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".conveyor"))
    text = (copy / "conveyor.toml").read_text().replace("min_approvals = 2", "min_approvals = 0")
    (copy / "conveyor.toml").write_text(text + f'\n[ledger]\nurl = "sqlite:///{root}/.conveyor/ledger.db"\n')
    copied = Releases(load_project(copy), Ledger.open(load_project(copy), clock=clock))
    with pytest.raises(PolicyDiffers, match=r"release\.prod\.min_approvals: 2 → 0"):
        copied.promote(qa.id, "prod", keys.carol)
    assert copied.approve(pending.id, keys.alice).status == "pending"
    assert copied.show(pending.id).min_approvals == 2


def test_a_policy_change_takes_force_only_with_the_approvers_of_the_one_in_force(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys
) -> None:
    root = make_project()
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    qa = releases.create(build(releases, "policy-change"), "qa", keys.carol)
    toml = root / "conveyor.toml"
    toml.write_text(toml.read_text().replace("min_approvals = 2", "min_approvals = 1"))
    lowered = Releases(load_project(root), releases.ledger)
    status = lowered.propose_policy(keys.alice)
    (proposal,) = status.proposals
    assert not status.same and proposal.changes == ["release.prod.min_approvals: 2 → 1"]
    with pytest.raises(PolicyDiffers):
        lowered.promote(qa.id, "prod", keys.carol)
    with pytest.raises(PolicyRefused, match="erin is not an approver"):
        lowered.approve_policy(proposal.proposal, keys.erin)
    with pytest.raises(PolicyRefused, match=r"alice proposed policy proposal \d+ and may not approve it"):
        lowered.approve_policy(proposal.proposal, keys.alice)
    assert lowered.approve_policy(proposal.proposal, keys.bob).proposals[0].missing
    status = lowered.approve_policy(proposal.proposal, keys.dave)
    assert status.same and status.proposals == []
    pending = lowered.promote(qa.id, "prod", keys.carol)
    assert pending.min_approvals == 1
    assert lowered.approve(pending.id, keys.alice).status == "live"
    assert lowered.ledger.verify_audit().ok


def test_any_exception_in_a_step_marks_the_release_failed(sqlite_releases: Releases, keys: Keys) -> None:
    """The alias step raises MlflowException (version 99 is not in the registry): the release is failed, the
    error recorded, and it can be resumed."""
    release_path = build(sqlite_releases, "no-such-version", model_version="99")
    with pytest.raises(CheckFailed, match="deployment of release 1 failed: MlflowException"):
        sqlite_releases.create(release_path, "qa", keys.carol)
    view = sqlite_releases.show(1)
    assert view.status == "failed" and "MlflowException" in (view.error or "")
    assert view.deployment is not None and view.deployment.steps == ["push", "check-digest", "attest"]


def test_the_alias_goes_to_the_stage_registry_where_the_gates_find_the_champion(
    make_project: Callable[..., Path],
    clock: FakeClock,
    keys: Keys,
    tmp_path: Path,
    logged_model_registry: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The build's model is in stage's registry; prod has a registry of its own. Going live in prod copies the
    version there (tagged with the package digest) and points `prod` at it: the registry the champion gate reads."""
    from conveyor.testing.gates import CHAMPION_ALIAS, champion_environment, require_no_live_release

    prod_registry = f"sqlite:///{tmp_path / 'prod-mlflow.db'}"
    root = make_project(min_approvals=1, stage_registry=logged_model_registry, prod_registry=prod_registry)
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    qa = releases.create(build(releases, "champion", model_version="1"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    import mlflow.tracking._model_registry.utils as registry_uri

    with pytest.MonkeyPatch.context() as patch:  # MLflow's process-wide registry URI pointing elsewhere, restored after
        patch.setattr(registry_uri, "_registry_uri", f"sqlite:///{tmp_path / 'elsewhere.db'}")
        live = releases.approve(pending.id, keys.alice)
    assert live.status == "live", live.error
    assert live.deployment is not None and live.deployment.alias == f"prod:{MODEL}@prod = 1"
    assert alias_version(prod_registry, CHAMPION_ALIAS) == "1"
    assert alias_version(logged_model_registry, "prod") is None
    from mlflow import MlflowClient

    tags = MlflowClient(tracking_uri=prod_registry, registry_uri=prod_registry).get_registered_model(MODEL).tags
    assert tags["conveyor.live.prod"] == "1"  # the registry's own record that prod is live, for the gates
    from conveyor.cli.main import main

    with pytest.MonkeyPatch.context() as patch:  # prod's registry lists the copy as trained in stage, copied
        patch.setenv("COLUMNS", "100")
        assert main(["models", "list", "--env", "prod", "-p", str(root)]) == 0
    out = capsys.readouterr().out
    assert "copied from stage" in out and "census_model/1" in out
    environment = champion_environment(project)
    MlflowClient(tracking_uri=prod_registry, registry_uri=prod_registry).delete_registered_model_alias(MODEL, "prod")
    with pytest.raises(
        CheckFailed, match=r"prod has a live release of census_model .* but census_model@prod is missing"
    ):
        require_no_live_release(environment, MODEL)
    assert champion_environment(project).registry_uri == prod_registry


def test_in_a_git_repository_the_ledger_adopts_only_the_committed_policy(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys
) -> None:
    import subprocess

    root = make_project()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".conveyor/\n")
    subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-qm", "project"], check=True)
    toml = root / "conveyor.toml"
    toml.write_text(toml.read_text().replace("min_approvals = 2", "min_approvals = 0"))
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    with pytest.raises(PolicyRefused, match=r"differ from what is committed \(git HEAD\)"):
        releases.create(build(releases, "uncommitted"), "qa", keys.carol)
    subprocess.run(["git", "-C", str(root), "checkout", "-q", "--", "conveyor.toml"], check=True)
    releases = Releases(load_project(root), releases.ledger)
    assert releases.create(build(releases, "committed"), "qa", keys.carol).status == "live"


def test_the_deployer_ships_from_its_own_copy_of_the_build(
    make_project: Callable[..., Path], clock: FakeClock, keys: Keys, tmp_path: Path
) -> None:
    """CI requests from its checkout; an approver deploys from theirs (same ledger, the build copied there, CI's
    gone): the files are found by the package digest and checked against the recorded digests."""
    root = make_project()
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    path = build(releases, "elsewhere")
    qa = releases.create(path, "qa", keys.ci)
    pending = releases.promote(qa.id, "prod", keys.ci)
    laptop = tmp_path / "laptop"
    shutil.copytree(root, laptop, ignore=shutil.ignore_patterns("ledger.db"))
    (laptop / "conveyor.toml").write_text(
        (laptop / "conveyor.toml").read_text() + f'\n[ledger]\nurl = "sqlite:///{root}/.conveyor/ledger.db"\n'
    )
    shutil.rmtree(path.parent)
    approver = Releases(load_project(laptop), Ledger.open(load_project(laptop), clock=clock))
    approver.approve(pending.id, keys.alice)
    live = approver.approve(pending.id, keys.bob)
    assert live.status == "live", live.error
    assert live.deployment is not None and live.deployment.reference.endswith(f"@{qa.image_digest}")


def test_a_push_of_an_image_holding_a_secret_value_is_refused(
    sqlite_releases: Releases, keys: Keys, registries: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every value of the stores the project reads (and every value read here) is looked for in every layer of the
    image before the push: one found stops the release, naming the layer, file and key, never the value."""
    from conveyor.secrets.redaction import register_secret

    monkeypatch.setenv("CONVEYOR_CACHE_DIR", str(tmp_path / "cache"))
    releases = sqlite_releases
    clean = releases.create(build(releases, "clean-image"), "qa", keys.carol)
    step = clean.deployment.results["push"] if clean.deployment else None
    assert clean.status == "live" and step is not None and "secret scan:" in (step.note or "")

    value = "s3cr3t-in-the-image-0042"
    register_secret(value, "registry-token")
    with pytest.raises(CheckFailed, match=r"refusing to publish image\.oci\.tar to") as refused:
        releases.create(build(releases, value), "qa", keys.carol)  # the image serves its label: the value
    assert "www/release: the value of registry-token" in refused.value.message and value not in refused.value.message
    failed = releases.list(stage="qa")[0]
    assert failed.status == "failed" and [e.release for e in releases.history("qa")] == [clean.id]
    repo = releases.project.config.release["qa"].target.split("/", 3)[-1]
    tags = httpx.get(f"http://{registries['qa']}/v2/{repo}/tags/list").json()["tags"]
    assert f"v1-r{clean.id}" in tags and f"v1-r{failed.id}" not in tags  # nothing of it was pushed


def test_a_build_restored_elsewhere_is_released_from_where_it_is(
    make_project: Callable[..., Path], keys: Keys, tmp_path: Path
) -> None:
    """build.json written on the machine that built it names that machine's paths; restored into another checkout
    (a CI artifact, a moved project), the build is found where its folder is now."""
    root = make_project()
    built = build(Releases(load_project(root)), "moved-build")
    assert str(root) in built.read_text()  # absolute paths of the first machine
    elsewhere = tmp_path / "runner" / "census"
    shutil.copytree(root, elsewhere)
    shutil.rmtree(root / ".conveyor" / "builds")  # nothing left where build.json points
    moved = elsewhere / built.relative_to(root)
    releases = Releases(load_project(elsewhere))
    qa = releases.create(moved, "qa", keys.carol)
    assert qa.status == "live" and qa.deployment is not None
    from conveyor.package.record import BuildRecord

    record = BuildRecord.load(moved)
    assert record.package_dir == moved.parent / "package" and record.image is not None
    assert record.image.archive == moved.parent / "image.oci.tar"


def test_a_shipment_reads_back_from_the_json_its_request_records(tmp_path: Path) -> None:
    attestation = Attestation("sha256:" + "a" * 64, "https://slsa.dev/provenance/v1", tmp_path / "provenance.json")
    shipment = Shipment(
        package_digest="sha256:" + "b" * 64,
        image_digest="sha256:" + "c" * 64,
        image_archive=tmp_path / "i.tar",
        package_dir=None,
        model_name="census",
        model_version="3",
        attestations=(attestation,),
        training_sandbox="none",
        source_dirty=True,
    )
    recorded = shipment.to_json("stage")
    assert list(recorded) == [
        "package",
        "image",
        "image_archive",
        "package_dir",
        "model",
        "model_env",
        "attestations",
        "training",
    ]
    assert recorded["model_env"] == "stage" and recorded["training"] == {"sandbox": "none", "dirty": True}
    assert recorded["attestations"] == [
        {"digest": attestation.digest, "predicate_type": attestation.predicate_type, "path": str(attestation.path)}
    ]
    assert Shipment.from_json(json.loads(json.dumps(recorded))) == shipment
