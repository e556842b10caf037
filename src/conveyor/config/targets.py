"""Where a release can go: the one table of deployment targets, keyed by the scheme of `[release.STAGE] target`.

The project file's validator and the CLI's help read this table; the release room turns an entry into its
`Target` class. The classes are named by import path so that this room, which every other room imports, imports
none of them. Adding a target is one module under `conveyor/release/targets/` and one entry here; a distribution
adds one under the entry-point group `conveyor.targets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.plugins import Entry, Table


@dataclass(frozen=True)
class TargetKind(Entry):
    """One kind of deployment target, by URL scheme (`name`): its URL form and pattern, what a deployment to it
    does (`summary`), the `Target` class that does it (`implementation`), and the names of the steps it runs
    (and, for one that can run a rollout beside the live release, the steps that start it: `rollout_steps`)."""

    form: str
    pattern: str
    steps: tuple[str, ...]
    rollout_steps: tuple[str, ...] = ()

    def matches(self, url: str) -> bool:
        return re.fullmatch(self.pattern, url) is not None


TARGETS: Table[TargetKind] = Table(
    TargetKind,
    (
        TargetKind(
            "oci",
            "conveyor.release.targets.oci:OciTarget",
            "the tested image is pushed by digest to the OCI registry, with its attestations as referrers, "
            "and the digest is read back",
            form="oci://HOST[:PORT]/REPO",
            pattern=r"oci://[^/\s]+/[^\s:@]+",
            steps=("push", "check-digest", "attest"),
        ),
        TargetKind(
            "local",
            "conveyor.release.targets.local:LocalTarget",
            "the tested image (or package) runs on 127.0.0.1:PORT; a new release starts beside the old one "
            "and takes over the port once /health/ready answers",
            form="local://PORT",
            pattern=r"local://\d{1,5}/?",
            steps=("load", "start", "switch"),
            rollout_steps=("load", "start", "split"),
        ),
        TargetKind(
            "batch",
            "conveyor.release.targets.batch:BatchTarget",
            "the tested package scores INPUT in ENV's lake into OUTPUT (Parquet; `{release}` in OUTPUT "
            "becomes the release's tag), locally or on ENV's Spark",
            form="batch://ENV/INPUT?output=OUTPUT[&engine=local|spark]",
            pattern=r"batch://[a-z0-9][a-z0-9_-]*/[^\s?]+\?output=[^\s&]+(&engine=(local|spark))?",
            steps=("verify", "score"),
        ),
    ),
    group="conveyor.targets",
)


def target_forms() -> str:
    """`oci://HOST[:PORT]/REPO or local://PORT`: the accepted forms, for messages and help."""
    forms = [kind.form for kind in TARGETS.values()]
    return ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]


def target_kind(url: str) -> TargetKind:
    """The kind of target `url` names; ValueError (naming the accepted forms) when none matches."""
    scheme = url.partition("://")[0]
    kind = TARGETS.get(scheme)
    if kind is None or "://" not in url:
        raise ValueError(f"must be {target_forms()}")
    if not kind.matches(url):
        raise ValueError(f"must be {kind.form}")
    return kind
