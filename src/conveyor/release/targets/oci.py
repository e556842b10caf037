"""`oci://HOST[:PORT]/REPO`: push the recorded image by digest, read the digest back, attach the attestations."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConfigError
from conveyor.package.lock import run_tool
from conveyor.release.shipment import check_image
from conveyor.release.targets.base import DeployContext, StepResult, Target, release_tag
from conveyor.release.targets.hosts import is_loopback
from conveyor.release.targets.referrers import Distribution, Envelope, attach

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from conveyor.secrets import SecretStore


def scan_image(archive: Path, reference: str, stores: Sequence[SecretStore]) -> str:
    """Refuse (exit 1) to push an image archive that holds a value of a store the project reads, in any written
    form, in any layer (names the layer, file and key, never the value); says what was scanned."""
    from conveyor.package.cache import cache_dir
    from conveyor.secrets.scan import refuse_published

    start = time.perf_counter()
    # layers found clean before for the same values (the base and dependency layers of most builds) are skipped
    known = refuse_published([archive], f"{archive.name} to {reference}", stores, cache_dir("secret-scan"))
    size = archive.stat().st_size / (1 << 20)
    return f"secret scan: {size:.0f} MiB, {known} known value(s), {time.perf_counter() - start:.1f} s, none found"


class OciTarget(Target):
    """Push the image archive the ledger recorded, by digest, to HOST/REPO; TLS is verified except on loopback."""

    scheme = "oci"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        location = url.removeprefix("oci://").strip("/")
        host, _, repo = location.partition("/")
        if not host or not repo:
            raise ConfigError(f"release target {url!r} must be oci://HOST[:PORT]/REPO")
        self.host, self.repo = host, repo
        self.insecure = is_loopback(host)

    def steps(self) -> list[str]:
        return ["push", "check-digest", "attest"]

    def reference(self, context: DeployContext) -> str:
        return f"{self.host}/{self.repo}:{release_tag(context)}"

    def run_step(self, name: str, context: DeployContext) -> StepResult:
        if name == "push":
            return self._push(context)
        if name == "check-digest":
            return self._check_digest(context)
        if name == "attest":
            return self._attest(context)
        raise ValueError(f"{type(self).__name__} has no step {name!r}")

    def _push(self, context: DeployContext) -> StepResult:
        archive, _ = context.shipment.require_image(context.stage)
        check_image(context.shipment, context.stage)
        reference = self.reference(context)
        scanned = scan_image(archive, reference, context.secret_stores)
        args = ["skopeo", "copy", "--quiet", "--preserve-digests"]
        if self.insecure:
            args.append("--dest-tls-verify=false")
        run_tool([*args, f"oci-archive:{archive}", f"docker://{reference}"], f"the push to {reference}")
        return StepResult(reference=reference, note=scanned)

    def _check_digest(self, context: DeployContext) -> StepResult:
        _, recorded = context.shipment.require_image(context.stage)
        reference = self.reference(context)
        args = ["skopeo", "inspect", "--raw"]
        if self.insecure:
            args.append("--tls-verify=false")
        raw = run_tool([*args, f"docker://{reference}"], f"reading back {reference}")
        pushed = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
        if pushed != recorded:
            raise CheckFailed(
                f"{reference} has digest {pushed}, not the tested {recorded} the ledger recorded",
                hint="The registry holds a different image than the one that was tested; the release is stopped.",
            )
        return StepResult(reference=f"{self.host}/{self.repo}@{pushed}", digest=pushed)

    def _attest(self, context: DeployContext) -> StepResult:
        _, recorded = context.shipment.require_image(context.stage)
        envelopes = [Envelope(a.read(), a.predicate_type) for a in context.shipment.attestations]
        if not envelopes:
            return StepResult(note="the release recorded no attestations")
        registry = Distribution(self.host, self.repo, insecure=self.insecure)
        try:
            referrers = attach(registry, recorded, envelopes)
        finally:
            registry.close()
        return StepResult(reference=f"{self.host}/{self.repo}@{recorded}", digest=recorded, referrers=tuple(referrers))
