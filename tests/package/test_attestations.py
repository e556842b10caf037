"""Attestations bind the build, its tests and its gates to the package and image digests, signed by the acting key:
an edited build.json (another image, a flipped tests.ok) and a signature by an outsider or a non-builder are
refused by `conveyor verify` and by `verify_build_attestations`, which is what a release accepts builds by."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from oci_layout import write_oci_archive

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.package import BuildRecord, build
from conveyor.package.attestations import (
    AttestationKind,
    AttestationRefused,
    attestation_path,
    referrer_envelopes,
    verify_build_attestations,
    write_attestation,
)
from conveyor.package.verify import verify_build
from conveyor.testing import run_gates, run_tests
from conveyor.trust import (
    SLSA_PROVENANCE,
    AllowedSigners,
    Envelope,
    Identity,
    UnknownSigner,
    load_signing_key,
)
from conveyor.trust.dsse import MEDIA_TYPE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def attested_image_build(image_build, keys, tmp_path_factory):
    """The image build, tested in its image and gated, each attested by ci."""
    results = tmp_path_factory.mktemp("results")
    assert run_tests(image_build, where="image", results_dir=results, key=keys.key("ci")).ok
    assert run_gates(image_build, key=keys.key("ci")).ok
    return BuildRecord.load(image_build.path)


def _copy(record: BuildRecord, base: Path) -> BuildRecord:
    """A copy of a build in a copy of its project (conveyor.toml, allowed_signers, tests, evaluate.py), its
    build.json pointing at the copy (the image archive is shared, not copied)."""
    project = base / "census"
    project.mkdir()
    for name in ("conveyor.toml", "allowed_signers", "evaluate.py"):
        shutil.copyfile(record.project_root / name, project / name)
    shutil.copytree(record.project_root / "tests", project / "tests")
    dest = project / ".conveyor" / "builds" / record.dir.name
    shutil.copytree(record.dir, dest, ignore=shutil.ignore_patterns("image.oci.tar", "context"))
    data = json.loads((dest / "build.json").read_text())
    data["package"]["dir"] = str(dest / "package")
    data["package"]["archive"] = str(dest / "package.tar")
    (dest / "build.json").write_text(json.dumps(data))
    return BuildRecord.load(dest / "build.json")


def test_build_test_and_gate_are_attested_and_accepted(attested_image_build, keys, census, capsys):
    record = attested_image_build
    allowed = AllowedSigners.load(keys.allowed_signers)
    accepted = verify_build_attestations(record, allowed, ["ci"])
    assert accepted.package_digest == record.digest and accepted.image_digest == record.image.digest
    assert accepted.signers == {"provenance": "ci", "tests": "ci", "gates": "ci"}
    assert all(a.passed for a in accepted.all)
    assert accepted.model is not None and accepted.model.name == "worst_regression" and accepted.env == "dev"
    for item in accepted.all:  # the digest the ledger records is the stored envelope's
        assert item.digest == Envelope.load(item.path).digest
    provenance = accepted.provenance.statement
    assert provenance.predicate_type == SLSA_PROVENANCE == "https://slsa.dev/provenance/v1"
    dependencies = {d["name"]: d for d in provenance.predicate["buildDefinition"]["resolvedDependencies"]}
    assert {"source", "training data", "model", "requirements.lock", "base image"} <= set(dependencies)
    assert dependencies["source"]["digest"]["gitCommit"] == record.model.tags["git_commit"]
    assert dependencies["model"]["annotations"]["run_id"] == record.model.run_id
    tests = accepted.tests.statement.predicate
    assert tests["result"] == "PASSED" and tests["failedTests"] == [] and len(tests["passedTests"]) >= 6
    assert {c["name"] for c in tests["configuration"]} == {"tests", "image"}
    gates = accepted.gates.statement.predicate
    assert gates["result"] == "PASSED" and set(gates["metrics"]) >= {"r2", "mae"}
    sealed = gates["configuration"][0]
    assert sealed["name"] == "sealed evaluation set" and set(sealed) == {"name", "digest"}  # a digest, no location
    # conveyor verify checks every envelope too
    assert main(["verify", str(record.path), "--project", str(census)]) == 0
    out = capsys.readouterr().out
    assert "provenance.dsse.json: signed by ci" in out and "tests.dsse.json: PASSED, signed by ci" in out
    # what the deploy step pushes beside the image as OCI referrers
    pushed = referrer_envelopes(record)
    assert [p.kind for p in pushed] == list(AttestationKind)
    assert {p.subject for p in pushed} == {record.image.digest} and pushed[0].media_type == MEDIA_TYPE
    assert pushed[0].annotations == {"in-toto.io/predicate-type": SLSA_PROVENANCE}


def test_image_section_swapped_from_another_build_is_refused(attested_image_build, keys, census, tmp_path, capsys):
    copy = _copy(attested_image_build, tmp_path)
    other = tmp_path / "other-image.oci.tar"
    digest, config = write_oci_archive(other, "an image that was never tested")
    data = json.loads(copy.path.read_text())
    data["image"].update(digest=digest, id=config, archive=str(other), reference="localhost/census:other")
    copy.path.write_text(json.dumps(data))
    forged = BuildRecord.load(copy.path)
    verify_build(forged.path)  # every byte matches what the edited build.json says: only the signatures catch it
    with pytest.raises(AttestationRefused, match="about other artifacts"):
        verify_build_attestations(forged, AllowedSigners.load(keys.allowed_signers), ["ci"])
    assert main(["verify", str(copy.path)]) == 1
    assert "about other artifacts" in capsys.readouterr().err


def test_tests_ok_flipped_in_build_json_is_refused(attested_image_build, keys, census, tmp_path, capsys):
    """A failed test run, signed FAILED; its build.json is then edited to say the tests passed."""
    copy = _copy(attested_image_build, tmp_path)
    (copy.project_root / "tests" / "test_zz_failing.py").write_text("def test_fails():\n    assert 1 == 2\n")
    report = run_tests(copy, where="venv", results_dir=tmp_path / "results", key=keys.key("ci"))
    assert not report.ok and report.signed_by == "ci"
    signed = Envelope.load(attestation_path(copy, AttestationKind.TESTS)).statement().predicate
    assert signed["result"] == "FAILED" and any("test_fails" in name for name in signed["failedTests"])
    data = json.loads(copy.path.read_text())
    data["tests"].update(ok=True, failed=0)
    copy.path.write_text(json.dumps(data))
    assert main(["verify", str(copy.path)]) == 1
    assert "says its tests passed, but the result ci signed is FAILED" in capsys.readouterr().err
    with pytest.raises(AttestationRefused, match="failed its tests: ci signed the result FAILED"):
        verify_build_attestations(BuildRecord.load(copy.path), AllowedSigners.load(keys.allowed_signers), ["ci"])


def test_tests_run_outside_the_image_do_not_vouch_for_it(attested_image_build, keys, tmp_path):
    copy = _copy(attested_image_build, tmp_path)
    report = run_tests(copy, where="venv", results_dir=tmp_path / "results", key=keys.key("ci"))
    assert report.ok
    with pytest.raises(AttestationRefused, match="ran outside the image") as caught:
        verify_build_attestations(copy, AllowedSigners.load(keys.allowed_signers), ["ci"])
    assert "--where image" in (caught.value.hint or "")


def test_attestation_by_a_key_outside_allowed_signers_is_refused(attested_image_build, keys, census, tmp_path):
    copy = _copy(attested_image_build, tmp_path)
    statement = Envelope.load(attestation_path(copy, AttestationKind.GATES)).statement()
    outsider = Identity("outsider", load_signing_key(keys.key("outsider")))
    write_attestation(copy, AttestationKind.GATES, statement, outsider)
    with pytest.raises(UnknownSigner):
        verify_build_attestations(copy, AllowedSigners.load(keys.allowed_signers), ["ci"])
    assert main(["verify", str(copy.path)]) == 1


def test_attestation_by_a_non_builder_is_refused(attested_image_build, keys, tmp_path):
    copy = _copy(attested_image_build, tmp_path)
    allowed = AllowedSigners.load(keys.allowed_signers)
    statement = Envelope.load(attestation_path(copy, AttestationKind.TESTS)).statement()
    write_attestation(copy, AttestationKind.TESTS, statement, Identity("alice", load_signing_key(keys.key("alice"))))
    verify_build(copy.path, allowed)  # a valid signature by a listed principal...
    with pytest.raises(AttestationRefused, match="signed by alice, who is not a builder"):
        verify_build_attestations(copy, allowed, ["ci"])  # ...but not one whose word a release takes
    assert verify_build_attestations(copy, allowed, ["ci", "alice"]).signers["tests"] == "alice"


def test_a_payload_edited_to_pass_breaks_the_signature(attested_image_build, keys, tmp_path):
    copy = _copy(attested_image_build, tmp_path)
    path = attestation_path(copy, AttestationKind.GATES)
    data = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    statement["predicate"]["metrics"]["r2"] = 0.99
    data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="does not match the signed data"):
        verify_build_attestations(copy, AllowedSigners.load(keys.allowed_signers), ["ci"])


def test_unsigned_build_works_says_so_and_cannot_be_released(census, keys, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CONVEYOR_SIGNING_KEY", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert main(["build", "--env", "dev", "--project", str(census), "--engine", "none"]) == 0
    captured = capsys.readouterr()
    assert "UNSIGNED" in captured.err and "cannot be released" in captured.out
    record = BuildRecord.load(Path(captured.out.split("record   ")[1].split()[0]))
    assert record.signed_by is None and not attestation_path(record, AttestationKind.PROVENANCE).exists()
    with pytest.raises(AttestationRefused, match=r"no signed provenance attestation \(it is unsigned\)"):
        verify_build_attestations(record, AllowedSigners.load(keys.allowed_signers), ["ci"])
    assert main(["verify", str(record.path)]) == 0
    assert "unsigned and cannot be released" in capsys.readouterr().out
    # the same build signed later (nothing rebuilt) gets its provenance
    project = load_project(census)
    again = build(project, project.environment("dev"), engine="none", key=keys.key("ci"))
    assert again.digest == record.digest
    assert again.signed_by == "ci" and attestation_path(again, AttestationKind.PROVENANCE).is_file()
    # whoever builds it next with a key vouches for it; without a key the provenance stays
    assert build(project, project.environment("dev"), engine="none", key=keys.key("alice")).signed_by == "alice"
    assert build(project, project.environment("dev"), engine="none").signed_by == "alice"
    assert build(project, project.environment("dev"), engine="none", key=keys.key("ci")).signed_by == "ci"


def test_a_key_asked_for_but_not_listed_is_exit_1_with_the_line_to_add(census, keys, capsys):
    code = main(
        ["build", "--env", "dev", "--project", str(census), "--engine", "none", "--key", str(keys.key("outsider"))]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "is not in" in err and f"NAME {load_signing_key(keys.key('outsider')).public.openssh()}" in err


def test_attestations_outside_a_project_need_one_named(attested_image_build, census, tmp_path, capsys):
    dest = tmp_path / "elsewhere" / "a" / "b" / attested_image_build.dir.name
    shutil.copytree(attested_image_build.dir, dest, ignore=shutil.ignore_patterns("image.oci.tar", "package.tar"))
    data = json.loads((dest / "build.json").read_text())
    data["package"]["dir"] = str(dest / "package")
    (dest / "build.json").write_text(json.dumps(data))
    shutil.copyfile(attested_image_build.archive, dest / "package.tar")
    data["package"]["archive"] = str(dest / "package.tar")
    (dest / "build.json").write_text(json.dumps(data))
    assert main(["verify", str(dest)]) == 2
    assert "no project holds" in capsys.readouterr().err
    assert main(["verify", str(dest), "--project", str(census)]) == 0
    assert "gates.dsse.json: PASSED, signed by ci" in capsys.readouterr().out


def test_an_older_passing_test_attestation_copied_back_after_a_failing_run_is_refused(
    attested_image_build, keys, tmp_path, capsys
):
    """Copy tests.dsse.json aside, add a failing test, run `conveyor test` (FAILED, signed), copy the pass back:
    `verify` saw the mismatch with build.json, and the release must refuse it too."""
    copy = _copy(attested_image_build, tmp_path)
    signed = attestation_path(copy, AttestationKind.TESTS)
    passing = signed.read_bytes()
    (copy.project_root / "tests" / "test_zz_failing.py").write_text("def test_fails():\n    assert 1 == 2\n")
    assert not run_tests(copy, where="venv", results_dir=tmp_path / "results", key=keys.key("ci")).ok
    signed.write_bytes(passing)  # the older pass, restored
    with pytest.raises(AttestationRefused, match="not the latest run's"):
        verify_build_attestations(BuildRecord.load(copy.path), AllowedSigners.load(keys.allowed_signers), ["ci"])
    assert main(["verify", str(copy.path)]) == 1
    capsys.readouterr()
    code = main(
        [
            "release",
            "create",
            str(copy.path),
            "--to",
            "qa",
            "--project",
            str(copy.project_root),
            "--key",
            str(keys.key("ci")),
        ]
    )
    assert code == 1
    assert "not the latest run's" in " ".join(capsys.readouterr().err.split())


def test_only_the_latest_runs_attestation_counts(attested_image_build, keys, tmp_path):
    """build.json says the latest run passed, but the envelope is an older one of another run: refused."""
    copy = _copy(attested_image_build, tmp_path)
    signed = attestation_path(copy, AttestationKind.TESTS)
    first = signed.read_bytes()
    assert run_tests(copy, where="image", results_dir=tmp_path / "r1", key=keys.key("ci")).ok  # a newer pass
    signed.write_bytes(first)
    with pytest.raises(AttestationRefused, match="is not the one its latest `conveyor test` wrote"):
        verify_build_attestations(BuildRecord.load(copy.path), AllowedSigners.load(keys.allowed_signers), ["ci"])
