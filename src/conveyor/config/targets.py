"""Where a release can go: the one table of deployment targets, keyed by the scheme of `[release.STAGE] target`.

The project file's validator and the CLI's help read this table; the release room turns an entry into its
`Target` class. The classes are named by import path so that this room, which every other room imports, imports
none of them. Adding a target is one module under `conveyor/release/targets/` and one entry here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetKind:
    """One kind of deployment target: its URL form, what a deployment to it does, and the class that does it."""

    scheme: str
    form: str
    pattern: str
    summary: str
    implementation: str

    def matches(self, url: str) -> bool:
        return re.fullmatch(self.pattern, url) is not None


TARGETS: dict[str, TargetKind] = {
    kind.scheme: kind
    for kind in (
        TargetKind(
            scheme="oci",
            form="oci://HOST[:PORT]/REPO",
            pattern=r"oci://[^/\s]+/[^\s:@]+",
            summary="the tested image is pushed by digest to the OCI registry, with its attestations as referrers, "
            "and the digest is read back",
            implementation="conveyor.release.targets.oci:OciTarget",
        ),
        TargetKind(
            scheme="local",
            form="local://PORT",
            pattern=r"local://\d{1,5}/?",
            summary="the tested image (or package) runs on 127.0.0.1:PORT; a new release starts beside the old one "
            "and takes over the port once /health/ready answers",
            implementation="conveyor.release.targets.local:LocalTarget",
        ),
        TargetKind(
            scheme="batch",
            form="batch://ENV/INPUT?output=OUTPUT[&engine=local|spark]",
            pattern=r"batch://[a-z0-9][a-z0-9_-]*/[^\s?]+\?output=[^\s&]+(&engine=(local|spark))?",
            summary="the tested package scores INPUT in ENV's lake into OUTPUT (Parquet; `{release}` in OUTPUT "
            "becomes the release's tag), locally or on ENV's Spark",
            implementation="conveyor.release.targets.batch:BatchTarget",
        ),
    )
}


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
