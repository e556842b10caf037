"""Signed attestations of a build, beside its build.json in `attestations/`: what was built, tested and gated.

Each is an in-toto Statement in a DSSE envelope signed by the acting key (`conveyor.trust`):

- `provenance.dsse.json` (`conveyor build`): SLSA provenance v1 (`conveyor.package.provenance`).
- `tests.dsse.json` (`conveyor test`): the in-toto test-result predicate
  (https://in-toto.io/attestation/test-result/v0.1).
- `gates.dsse.json` (`conveyor gate`): `GATE_RESULT`, the gates' metrics, rules and thresholds, champion and result.

Their subjects are the package digest and the image manifest digest, so a result cannot be carried over to
another build, and an edited build.json (another image, a flipped `tests.ok`) no longer matches them. Nothing that
decides reads build.json's `tests` or `gates`: `verify_build_attestations` is what a release accepts a build by.

A run without a usable signing key still works, writes no attestation (and removes the older one of its kind,
so a stale result never stands for the new run), and says plainly that the build cannot be released.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.package.provenance import IMAGE_SUBJECT, PACKAGE_SUBJECT, provenance_statement
from conveyor.package.record import BuildRecord, short_digest
from conveyor.secrets.boundaries import mask_json
from conveyor.trust import (
    ENV_VARIABLE,
    SLSA_PROVENANCE,
    TEST_RESULT,
    AllowedSigners,
    AllowedSignersError,
    Envelope,
    Identity,
    MalformedSignature,
    NotAllowedSigner,
    SigningKey,
    SigningKeyError,
    Statement,
    identify,
    load_signing_key,
    sign_statement,
    verify_envelope,
)
from conveyor.trust.dsse import MEDIA_TYPE

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Project

Progress = Callable[[str], None]
ATTESTATIONS_DIR = "attestations"
GATE_RESULT = "https://conveyor.dev/attestation/gate-result/v1"
PASSED, FAILED = "PASSED", "FAILED"
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"


class AttestationKind(StrEnum):
    """What an attestation vouches for, and the command that writes it."""

    PROVENANCE = "provenance"
    TESTS = "tests"
    GATES = "gates"

    @property
    def predicate_type(self) -> str:
        return {"provenance": SLSA_PROVENANCE, "tests": TEST_RESULT, "gates": GATE_RESULT}[self.value]

    @property
    def command(self) -> str:
        return {"provenance": "conveyor build", "tests": "conveyor test", "gates": "conveyor gate"}[self.value]


class AttestationRefused(CheckFailed):
    """A build's attestations do not let it be released: missing, unsigned, by a non-builder, about other
    artifacts, or saying that a test or gate failed."""


def attestation_path(record: BuildRecord, kind: AttestationKind) -> Path:
    return record.dir / ATTESTATIONS_DIR / f"{kind.value}.dsse.json"


# --- who signs ---------------------------------------------------------------------------------------------------
UNSIGNED = (
    "The build is UNSIGNED and cannot be released: sign with a key listed in allowed_signers "
    "(--key PATH, $CONVEYOR_SIGNING_KEY, or git's user.signingkey)."
)


def attesting_identity(project: Project, key: Path | SigningKey | None, say: Progress) -> Identity | None:
    """Who signs this run's attestation: the acting key's principal in the project's allowed_signers.

    A key asked for (`key`, or $CONVEYOR_SIGNING_KEY) that cannot be used is an error (with the fix): exit 2, or 1
    when it is a working key that allowed_signers does not list.
    With no key asked for, and none usable from git's user.signingkey, the run goes on unsigned and says so.
    """
    asked = key is not None or bool(os.environ.get(ENV_VARIABLE, "").strip())
    try:
        signing_key = key if isinstance(key, SigningKey) else load_signing_key(key, cwd=project.root)
        identity = identify(AllowedSigners.load(project.allowed_signers_file), signing_key)
    except (SigningKeyError, NotAllowedSigner, AllowedSignersError) as error:
        if asked:
            raise
        say(f"{error.message}. {UNSIGNED}")
        return None
    builders = project.config.trust.builders
    if identity.principal in builders:
        say(f"signing as {identity}")
    else:
        say(
            f"signing as {identity}, who is not a builder ([trust] builders: {', '.join(builders) or 'none'}): "
            "a release accepts only builders' attestations"
        )
    return identity


def write_attestation(
    record: BuildRecord, kind: AttestationKind, statement: Statement, identity: Identity | None
) -> Path | None:
    """Sign `statement` and store it as the build's `kind` attestation; with no identity, remove the older one."""
    path = attestation_path(record, kind)
    if identity is None:
        path.unlink(missing_ok=True)
        _record_latest(record, kind, None)
        return None
    if statement.predicate_type != kind.predicate_type:
        raise ValueError(f"a {kind} attestation carries {kind.predicate_type}, not {statement.predicate_type}")
    envelope = sign_statement(replace(statement, predicate=mask_json(statement.predicate)), identity.key)
    envelope.save(path)
    _record_latest(record, kind, envelope.digest)
    return path


LATEST = "attested"  # build.json's section: kind -> the envelope digest the latest run of that kind wrote


def _record_latest(record: BuildRecord, kind: AttestationKind, digest: str | None) -> None:
    latest = dict(record.data.get(LATEST) or {})
    latest[str(kind)] = digest
    record.update(LATEST, latest)


def require_latest_run(record: BuildRecord, item: CheckedAttestation) -> None:
    """A test or gate attestation must be the one the latest run wrote (build.json records its envelope digest
    and its verdict): an older passing result copied back over a later failure is refused, as `verify` does.

    build.json is not signed, so this stops a stale file, not someone who rewrites build.json to match it: in CI
    the build folder is the pipeline's own artifact, and the ledger records the envelope digests a release used.
    """
    summary = {AttestationKind.TESTS: record.tests, AttestationKind.GATES: record.gates}.get(item.kind)
    if summary is None:
        return
    if bool(summary.get("ok")) != item.passed:
        said = "passed" if summary.get("ok") else "failed"
        raise AttestationRefused(
            f"build.json of build {record.short} says its {item.kind} {said}, but the result {item.signer} signed "
            f"is {item.result}: the attestation is not the latest run's",
            hint=f"An older attestation was copied back, or build.json was edited: run `{item.kind.command}` again.",
        )
    latest = record.data.get(LATEST)
    if isinstance(latest, dict) and str(item.kind) in latest and latest[str(item.kind)] != item.digest:
        raise AttestationRefused(
            f"the {item.kind} attestation of build {record.short} ({item.digest[:19]}) is not the one its latest "
            f"`{item.kind.command}` wrote ({str(latest[str(item.kind)])[:19]})",
            hint=f"A newer run's result is what counts: run `{item.kind.command}` again for a fresh attestation.",
        )


def attest_provenance(record: BuildRecord, identity: Identity | None) -> Path | None:
    """Write the build's signed SLSA provenance (or remove an older one when unsigned)."""
    if identity is None:
        attestation_path(record, AttestationKind.PROVENANCE).unlink(missing_ok=True)
        return None
    return write_attestation(
        record, AttestationKind.PROVENANCE, provenance_statement(record, identity.principal), identity
    )


def attested_by(project: Project, record: BuildRecord, kind: AttestationKind) -> str | None:
    """Who signed the build's `kind` attestation, when it verifies against the project's allowed_signers."""
    try:
        item = _check_one(record, kind, AllowedSigners.load(project.allowed_signers_file))
    except ConveyorError:
        return None
    return item.signer if item else None


def drop_results(record: BuildRecord) -> None:
    """Remove the test and gate attestations (they name an image that is no longer the build's)."""
    for kind in (AttestationKind.TESTS, AttestationKind.GATES):
        attestation_path(record, kind).unlink(missing_ok=True)


# --- checking ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedAttestation:
    """An envelope whose signature verified and whose subjects are this build's package and image."""

    kind: AttestationKind
    path: Path
    digest: str
    signer: str
    statement: Statement

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type

    @property
    def result(self) -> str:
        """PASSED or FAILED for tests and gates (as signed); PASSED for provenance."""
        if self.kind is AttestationKind.PROVENANCE:
            return PASSED
        return str(self.statement.predicate.get("result", "")).upper()

    @property
    def passed(self) -> bool:
        return self.result == PASSED

    @property
    def subjects(self) -> dict[str, str]:
        return self.statement.digests()

    def names_image(self, image_digest: str) -> bool:
        return image_digest in self.subjects.values()


def _check_one(record: BuildRecord, kind: AttestationKind, allowed: AllowedSigners) -> CheckedAttestation | None:
    path = attestation_path(record, kind)
    if not path.is_file():
        return None
    envelope = Envelope.load(path)
    signer, statement = verify_envelope(envelope, allowed)
    if statement.predicate_type != kind.predicate_type:
        raise MalformedSignature(
            f"{path} carries a {statement.predicate_type} statement, not the {kind} attestation "
            f"({kind.predicate_type})",
            hint=f"An attestation was copied over another; run `{kind.command}` again.",
        )
    actual = {record.digest} | ({record.image.digest} if record.image else set())
    named = set(statement.digests().values())
    if record.digest not in named or not named <= actual:
        raise AttestationRefused(
            f"the {kind} attestation of build {record.short} is about other artifacts ({', '.join(sorted(named))}) "
            f"than this build's package {record.digest}"
            + (f" and image {record.image.digest}" if record.image else ""),
            hint="build.json was changed after the build was attested, or the attestation belongs to another "
            "build; rebuild, or restore build.json.",
        )
    return CheckedAttestation(kind, path, envelope.digest, signer, statement)


def check_attestations(record: BuildRecord, allowed: AllowedSigners) -> list[CheckedAttestation]:
    """Every attestation the build has, each verified against `allowed` and against the package and image the
    record names (pair with `verify_build`, which checks the files against the record). A SignatureRefused or
    AttestationRefused (exit 1) names the first that does not hold."""
    checked = [_check_one(record, kind, allowed) for kind in AttestationKind]
    return [item for item in checked if item is not None]


@dataclass(frozen=True)
class AttestedModel:
    """The model version a build's provenance names."""

    name: str
    version: str
    run_id: str | None


@dataclass(frozen=True)
class BuildAttestations:
    """What a release may rely on about a build: each fact comes from a verified, builder-signed attestation."""

    provenance: CheckedAttestation
    tests: CheckedAttestation
    gates: CheckedAttestation

    @property
    def all(self) -> tuple[CheckedAttestation, CheckedAttestation, CheckedAttestation]:
        return self.provenance, self.tests, self.gates

    @property
    def package_digest(self) -> str:
        return self.provenance.subjects[PACKAGE_SUBJECT]

    @property
    def image_digest(self) -> str | None:
        return self.provenance.subjects.get(IMAGE_SUBJECT)

    @property
    def digests(self) -> dict[str, str]:
        """Attestation kind → envelope digest (what the ledger records)."""
        return {a.kind.value: a.digest for a in self.all}

    @property
    def signers(self) -> dict[str, str]:
        return {a.kind.value: a.signer for a in self.all}

    @property
    def env(self) -> str | None:
        """The environment whose registry the model came from."""
        value = _external(self.provenance).get("environment")
        return str(value) if value else None

    @property
    def model(self) -> AttestedModel | None:
        value = _external(self.provenance).get("model")
        if not isinstance(value, dict) or not value.get("name"):
            return None
        run_id = value.get("run_id")
        return AttestedModel(str(value["name"]), str(value.get("version")), str(run_id) if run_id else None)

    @property
    def training(self) -> tuple[str | None, bool | None]:
        """(the training sandbox, whether the source tree was dirty) as the signed provenance says; None unknown."""
        value = _external(self.provenance).get("training")
        if not isinstance(value, dict):
            return None, None
        sandbox, dirty = value.get("sandbox"), value.get("gitDirty")
        return (str(sandbox) if sandbox else None), (dirty if isinstance(dirty, bool) else None)

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package_digest,
            "image": self.image_digest,
            "attestations": {
                a.kind.value: {"digest": a.digest, "signer": a.signer, "result": a.result, "path": str(a.path)}
                for a in self.all
            },
        }


def _external(attestation: CheckedAttestation) -> dict[str, Any]:
    definition = attestation.statement.predicate.get("buildDefinition")
    external = definition.get("externalParameters") if isinstance(definition, dict) else None
    return external if isinstance(external, dict) else {}


def verify_build_attestations(record: BuildRecord, allowed: AllowedSigners, builders: list[str]) -> BuildAttestations:
    """The build's provenance, test and gate attestations when a release may accept them: each verified, signed by
    one of `builders`, naming this build's package and image, and the tests and gates PASSED.

    Raises AttestationRefused or a SignatureRefused (exit 1) naming the first that is missing or does not hold.
    Checks the record against the attestations, not the files against the record: call `verify_build` too.
    """
    found = {item.kind: item for item in check_attestations(record, allowed)}
    for kind in AttestationKind:
        item = found.get(kind)
        if item is None:
            unsigned = " (it is unsigned)" if not found else ""
            raise AttestationRefused(
                f"build {record.short} has no signed {kind} attestation{unsigned}, so it cannot be released",
                hint=f"Run `{kind.command}` with a builder's key ([trust] builders: {', '.join(builders) or 'none'}),"
                " as CI does with $CONVEYOR_SIGNING_KEY.",
            )
        if item.signer not in builders:
            raise AttestationRefused(
                f"the {kind} attestation of build {record.short} is signed by {item.signer}, who is not a builder "
                f"([trust] builders: {', '.join(builders) or 'none'})",
                hint=f"Only builders vouch for builds: run `{kind.command}` in CI, or with a builder's key.",
            )
        if not item.passed:
            raise AttestationRefused(
                f"build {record.short} failed its {kind}: {item.signer} signed the result {item.result}",
                hint=f"Only a build whose {kind} passed can be released; fix and rebuild.",
            )
        require_latest_run(record, item)
        if record.image is not None and not item.names_image(record.image.digest):
            where = " (the tests ran outside the image)" if kind is AttestationKind.TESTS else ""
            raise AttestationRefused(
                f"the {kind} attestation of build {record.short} does not name its image "
                f"{short_digest(record.image.digest)}{where}",
                hint=f"Run `{kind.command}`"
                + (" --where image" if kind is AttestationKind.TESTS else "")
                + " with a builder's key.",
            )
    return BuildAttestations(
        found[AttestationKind.PROVENANCE], found[AttestationKind.TESTS], found[AttestationKind.GATES]
    )


# --- pushing -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferrerEnvelope:
    """An envelope to push to an OCI registry as a referrer of the image (a manifest whose `subject` is the image
    manifest, with one layer of `media_type` holding the file's bytes; `digest` and `size` are the file's)."""

    kind: AttestationKind
    path: Path
    digest: str
    size: int
    predicate_type: str
    subject: str
    media_type: str = MEDIA_TYPE

    @property
    def annotations(self) -> dict[str, str]:
        return {PREDICATE_TYPE_ANNOTATION: self.predicate_type}


def referrer_envelopes(record: BuildRecord) -> list[ReferrerEnvelope]:
    """The build's envelopes that name its image, to push beside it. Not verified here: push what
    `verify_build_attestations` accepted."""
    image = record.image
    if image is None:
        return []
    found = []
    for kind in AttestationKind:
        path = attestation_path(record, kind)
        if not path.is_file():
            continue
        try:
            envelope = Envelope.load(path)
            statement = envelope.statement()
        except ConveyorError:
            continue
        if image.digest in statement.digests().values():
            data = path.read_bytes()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            found.append(ReferrerEnvelope(kind, path, digest, len(data), statement.predicate_type, image.digest))
    return found
