"""What a build is, by its signed attestations: only a build with valid provenance and passing test and gate
attestations, signed by a builder of the policy in force, can be requested, and what its request records (package
digest, image manifest digest, model version, envelope digests) comes from those attestations, not from
build.json's own fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.errors import CheckFailed
from conveyor.package.record import BuildRecord
from conveyor.release.policy import PolicySet
from conveyor.release.shipment import Attestation, Shipment
from conveyor.trust import SLSA_PROVENANCE, TEST_RESULT, AllowedSigners, Envelope, Statement, verify_envelope

ATTESTATIONS_DIR = "attestations"
GATE_RESULT = "https://conveyor.dev/attestation/gate-result/v1"


@dataclass(frozen=True)
class VerifiedAttestation:
    """An envelope that verified: its digest, where it is, who signed it, what it says."""

    digest: str
    path: Path
    signer: str
    statement: Statement

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type


def verify_build_attestations(
    record: BuildRecord, allowed: AllowedSigners, builders: list[str]
) -> list[VerifiedAttestation]:
    """Provenance, test and gate attestations of `record`, each signed by a builder; CheckFailed naming the first
    one missing, unsigned, not by a builder, or saying a test or gate failed."""
    folder = record.dir / ATTESTATIONS_DIR
    found: dict[str, VerifiedAttestation] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        envelope = Envelope.load(path)
        signer, statement = verify_envelope(envelope, allowed)
        if signer not in builders:
            raise CheckFailed(
                f"attestation {path.name} of build {record.short} is signed by {signer}, who is not a builder",
                hint=f"Only [trust] builders ({', '.join(builders) or 'none'}) vouch for builds: build and test in CI.",
            )
        found[statement.predicate_type] = VerifiedAttestation(envelope.digest, path, signer, statement)
    for predicate, what, fix in (
        (SLSA_PROVENANCE, "provenance", "conveyor build"),
        (TEST_RESULT, "test", "conveyor test"),
        (GATE_RESULT, "gate", "conveyor gate"),
    ):
        if predicate not in found:
            raise CheckFailed(
                f"build {record.short} has no signed {what} attestation", hint=f"Run `{fix}` with a builder's key."
            )
        _subjects_match(found[predicate], record, what)
    _passed(found[TEST_RESULT].statement.predicate, record, "tests")
    _passed(found[GATE_RESULT].statement.predicate, record, "gates")
    return [found[p] for p in (SLSA_PROVENANCE, TEST_RESULT, GATE_RESULT)]


def _subjects_match(attestation: VerifiedAttestation, record: BuildRecord, what: str) -> None:
    digests = set(attestation.statement.digests().values())
    image = record.image
    wanted = {record.digest} | ({image.digest} if image else set())
    if not wanted <= digests:
        raise CheckFailed(
            f"the {what} attestation of build {record.short} is about another package or image than this build's "
            f"(it names {', '.join(sorted(digests))})",
            hint="build.json was changed after the build was tested, or the attestation belongs to another build.",
        )


def _passed(predicate: dict[str, Any], record: BuildRecord, what: str) -> None:
    if str(predicate.get("result", "")).upper() != "PASSED":
        raise CheckFailed(
            f"build {record.short} failed its {what} (signed result: {predicate.get('result')})",
            hint=f"Only a build whose {what} passed can be released; fix and rebuild.",
        )


def attested_shipment(record: BuildRecord, policy: PolicySet) -> tuple[Shipment, str | None]:
    """The shipment `record`'s attestations vouch for, and the environment whose registry holds its model.

    Raises (exit 1) when an attestation is missing, fails to verify, is not by a builder, does not name the package
    and image present, or says a test or gate failed.
    """
    allowed = AllowedSigners.parse(policy.allowed_signers_text, "the ledger's policy in force")
    verified = verify_build_attestations(record, allowed, list(policy.builders))
    provenance = verified[0].statement
    subjects = provenance.digests()
    image = record.image
    image_digest = image.digest if image else None
    model = provenance.predicate.get("model") or {}
    shipment = Shipment(
        package_digest=record.digest,
        image_digest=image_digest if image_digest in subjects.values() else None,
        image_archive=image.archive if image else None,
        package_dir=record.package_dir,
        model_name=model.get("name"),
        model_version=None if model.get("version") is None else str(model["version"]),
        attestations=tuple(Attestation(a.digest, a.predicate_type, a.path) for a in verified),
    )
    env = provenance.predicate.get("env")
    return shipment, None if env is None else str(env)
