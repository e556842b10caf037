"""A running rollout's figures, candidate beside live, and the watcher that aborts it when a rule breaks.

The figures come from what served the requests: the stage forwarder's stats lines (requests, errors, latency per
package digest, shadow outcomes; `conveyor.release.splitter`) differenced over the window, like Prometheus'
`increase()`, and each server's `/metrics` for drift (`conveyor_drift_psi`, `conveyor_drift_ks_pvalue`). The rules
are the ones recorded with the rollout's request (`[release.STAGE.rollout]` of the policy in force then), never
the project file as it is now.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import httpx

from conveyor.errors import ConveyorError
from conveyor.release.routes import stats_path

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conveyor.config import Project
    from conveyor.release.state import LedgerState, ReleaseState


@dataclass(frozen=True)
class VersionFigures:
    """One version's figures over the window, as the forwarder measured them."""

    release: int | None
    package: str
    role: str  # live | candidate | shadow
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    shadow: dict[str, int] = field(default_factory=dict)
    drift: dict[str, dict[str, float]] = field(default_factory=dict)  # feature → psi, ks_pvalue

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "error_rate": self.error_rate}


@dataclass(frozen=True)
class RuleCheck:
    """A rule on the candidate's figures: the value it saw and whether it holds (None: not yet known)."""

    rule: str
    metric: str
    value: float | None
    holds: bool | None


@dataclass(frozen=True)
class RolloutStatus:
    """The stage's running rollout and its versions side by side over `window_seconds`."""

    stage: str
    release: int
    mode: str
    weight: int
    live: int | None
    window_seconds: int
    versions: list[VersionFigures]
    checks: list[RuleCheck]
    min_requests: int
    pending: str | None

    @property
    def candidate(self) -> VersionFigures | None:
        role = "shadow" if self.mode == "shadow" else "candidate"
        return next((v for v in self.versions if v.role == role and v.release == self.release), None)

    @property
    def enough(self) -> bool:
        """Whether the candidate has had `min_requests` in the window, so its rules count."""
        found = self.candidate
        return found is not None and found.requests >= self.min_requests

    @property
    def broken(self) -> RuleCheck | None:
        return next((c for c in self.checks if c.holds is False), None) if self.enough else None

    def figures(self) -> dict[str, float | None]:
        """The candidate's figures by rule metric name."""
        found = self.candidate
        if found is None:
            return {}
        drift = found.drift.values()
        psis = [d["psi"] for d in drift if "psi" in d]
        ks = [d["ks_pvalue"] for d in drift if "ks_pvalue" in d]
        compared = sum(found.shadow.get(k, 0) for k in ("same", "differs"))
        return {
            "error_rate": found.error_rate,
            "p50_ms": found.p50_ms,
            "p99_ms": found.p99_ms,
            "psi": max(psis) if psis else None,
            "ks_pvalue": min(ks) if ks else None,
            "shadow_differs": found.shadow.get("differs", 0) / compared if compared else None,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "release": self.release,
            "mode": self.mode,
            "weight": self.weight,
            "live": self.live,
            "window_seconds": self.window_seconds,
            "min_requests": self.min_requests,
            "pending": self.pending,
            "versions": [v.to_dict() for v in self.versions],
            "checks": [asdict(c) for c in self.checks],
            "enough": self.enough,
            "broken": asdict(self.broken) if self.broken else None,
        }


def running_rollout(state: LedgerState, stage: str) -> ReleaseState:
    """The release rolling out in `stage`; ConveyorError (exit 2) when none runs."""
    found = state.releases.get(state.rollouts.get(stage, 0))
    if found is None or found.rollout is None or not found.rollout.running:
        raise ConveyorError(
            f"no rollout runs in {stage}",
            hint=f"Start one: conveyor release promote N --to {stage} --canary 10 (or --shadow)",
        )
    return found


def rollout_status(
    project: Project, state: LedgerState, stage: str, window_seconds: int | None = None
) -> RolloutStatus:
    """The running rollout of `stage` with its versions' figures over the window (default: the recorded rules')."""
    from conveyor.release.targets.local import LocalTarget

    release = running_rollout(state, stage)
    rollout = release.rollout
    assert rollout is not None  # noqa: S101 -- narrows for mypy: running_rollout returns a release with a rollout
    recorded = release.policy.rollout
    window = window_seconds or (recorded.window_seconds if recorded else 300)
    route_file = LocalTarget(release.policy.target).route_file(project.state_dir, stage)
    releases_of = {r.shipment.package_digest: r.id for r in (release, state.releases.get(rollout.beside or 0)) if r}
    versions = _figures(stats_path(route_file), window, releases_of)
    start = release.deployment.steps.get("start") if release.deployment else None
    candidate_url = start.url if start else None
    if candidate_url:
        drift = read_drift(candidate_url, release.shipment.package_digest)
        versions = [VersionFigures(**{**asdict(v), "drift": drift}) if v.release == release.id else v for v in versions]
    status = RolloutStatus(
        stage,
        release.id,
        str(rollout.mode),
        rollout.weight,
        rollout.beside,
        window,
        versions,
        [],
        recorded.min_requests if recorded else 100,
        rollout.pending.describe() if rollout.pending else None,
    )
    rules = recorded.parsed() if recorded else []
    figures = status.figures()
    checks = [RuleCheck(r.text, r.metric, figures.get(r.metric), r.holds(figures)) for r in rules]
    return RolloutStatus(**{**status.__dict__, "checks": checks})


def _figures(path: Path, window: int, releases_of: dict[str, int]) -> list[VersionFigures]:
    """Each (package, role)'s figures: the newest stats line minus the newest one at least `window` older."""
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
    if not lines:
        return []
    last = lines[-1]
    base = next((line for line in reversed(lines) if line["at"] <= last["at"] - window), None)
    before = {(f["package"], f["role"]): f for f in (base["figures"] if base else [])}
    bounds = list(last.get("bounds_ms") or [])
    found = []
    for now in last["figures"]:
        if now["package"] not in releases_of:
            continue
        then = before.get((now["package"], now["role"]), {})
        earlier = then.get("latency") or [0] * len(now["latency"])
        buckets = [a - b for a, b in zip(now["latency"], earlier, strict=True)]
        shadow = {k: v - (then.get("shadow") or {}).get(k, 0) for k, v in (now.get("shadow") or {}).items()}
        found.append(
            VersionFigures(
                release=releases_of.get(now["package"]),
                package=now["package"],
                role=now["role"],
                requests=now["requests"] - then.get("requests", 0),
                errors=now["errors"] - then.get("errors", 0),
                p50_ms=quantile(buckets, bounds, 0.5),
                p99_ms=quantile(buckets, bounds, 0.99),
                shadow=shadow,
            )
        )
    order = {"live": 0, "candidate": 1, "shadow": 2}
    return sorted(found, key=lambda v: order.get(v.role, 3))


def quantile(buckets: list[int], bounds: list[float], q: float) -> float | None:
    """The q-quantile of a latency histogram (counts per bucket, upper bounds; the last bucket is open), with
    linear interpolation inside the bucket, as Prometheus' histogram_quantile does."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(buckets):
        if seen + count >= rank and count:
            if index >= len(bounds):
                return float(bounds[-1])
            lower = bounds[index - 1] if index else 0.0
            return round(lower + (bounds[index] - lower) * (rank - seen) / count, 3)
        seen += count
    return float(bounds[-1])


def read_drift(url: str, package: str) -> dict[str, dict[str, float]]:
    """The drift gauges a server exports for `package` (feature → psi, ks_pvalue); empty when it has none."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    names = {"conveyor_drift_psi": "psi", "conveyor_drift_ks_pvalue": "ks_pvalue"}
    drift: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in names:
            continue
        for sample in family.samples:
            labelled = sample.labels.get("package")
            if labelled and not package.startswith(labelled.removeprefix("sha256:")) and labelled != package:
                continue
            drift.setdefault(sample.labels.get("feature", "?"), {})[names[family.name]] = float(sample.value)
    return drift


@dataclass(frozen=True)
class WatchOutcome:
    """How `rollout watch` ended: the rollout aborted for a rule, ended by someone else, or still healthy."""

    stage: str
    release: int | None
    ended: str  # aborted | over | healthy
    rule: str | None = None
    figures: dict[str, float | None] | None = None
    checks: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def watch(
    project: Project,
    read_state: Callable[[], LedgerState],
    abort: Callable[[int, RuleCheck, dict[str, float | None]], None],
    stage: str,
    *,
    interval: float = 5.0,
    duration: float | None = None,
    once: bool = False,
    report: Callable[[RolloutStatus], None] | None = None,
) -> WatchOutcome:
    """Check the stage's rollout every `interval` seconds against its recorded rules until it ends, a rule breaks
    (then `abort` signs the abort), `duration` passes, or once."""
    started = time.monotonic()
    checks = 0
    release_id: int | None = None
    while True:
        try:
            status = rollout_status(project, read_state(), stage)
        except ConveyorError:
            if release_id is None:
                raise
            return WatchOutcome(stage, release_id, "over", checks=checks)
        release_id = status.release
        checks += 1
        if report is not None:
            report(status)
        broken = status.broken
        if broken is not None:
            figures = status.figures()
            abort(status.release, broken, figures)
            return WatchOutcome(stage, status.release, "aborted", broken.rule, figures, checks)
        if once or (duration is not None and time.monotonic() - started + interval > duration):
            return WatchOutcome(stage, status.release, "healthy", checks=checks)
        time.sleep(interval)
