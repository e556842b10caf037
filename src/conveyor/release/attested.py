"""What a build is, by its signed attestations: only a build with valid provenance and passing test and gate
attestations, signed by a builder of the policy in force, can be requested, and what its request records (package
digest, image manifest digest, model version, envelope digests) comes from those attestations, not from
build.json's own fields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.package.attestations import AttestationRefused, BuildAttestations, verify_build_attestations
from conveyor.release.shipment import Attestation, Shipment
from conveyor.trust import AllowedSigners

if TYPE_CHECKING:
    from conveyor.package.record import BuildRecord
    from conveyor.release.policy import PolicySet


def attested_shipment(record: BuildRecord, policy: PolicySet) -> tuple[Shipment, str | None]:
    """The shipment `record`'s attestations vouch for, and the environment whose registry holds its model.

    The signers and builders are the policy's (the ledger's policy in force), never a project file's. Raises
    (exit 1) when an attestation is missing, fails to verify, is not by a builder, does not name the package and
    image, says a test or gate failed, or its gate result was made under other gate rules than the policy's.
    """
    allowed = AllowedSigners.parse(policy.allowed_signers_text, "the ledger's policy in force")
    attested = verify_build_attestations(record, allowed, list(policy.builders))
    require_gate_policy(record, attested, policy)
    model = attested.model
    image = record.image
    shipment = Shipment(
        package_digest=attested.package_digest,
        image_digest=attested.image_digest,
        image_archive=image.archive if image is not None and image.digest == attested.image_digest else None,
        package_dir=record.package_dir,
        model_name=model.name if model else None,
        model_version=model.version if model else None,
        attestations=tuple(Attestation(a.digest, a.predicate_type, a.path) for a in attested.all),
        training_sandbox=attested.training[0],
        source_dirty=attested.training[1],
    )
    return shipment, attested.env


def require_gate_policy(record: BuildRecord, attested: BuildAttestations, policy: PolicySet) -> None:
    """The gate attestation must have been made under the policy's gate rules (and sealed-set settings)."""
    from conveyor.config.gates import GatePolicy

    in_force = policy.gate_policy()
    recorded = attested.gates.statement.predicate.get("policy")
    if isinstance(recorded, dict) and GatePolicy.from_json(recorded) == in_force:
        return
    if isinstance(recorded, dict):
        changes = in_force.changes(GatePolicy.from_json(recorded))
        why = "was made under other gate rules than the policy in force:\n  " + "\n  ".join(changes)
    else:
        why = "records no gate policy, so the rules it passed are unknown"
    raise AttestationRefused(
        f"the gates attestation of build {record.short} {why}",
        hint="Run `conveyor gate` again under the gate rules in force (conveyor release policy show); to change "
        "the rules, propose them: conveyor release policy propose, and have the approvers approve them.",
    )
