"""What the dashboard shows, read through the same public functions the CLI's `--json` uses.

The ledger is verified once per change of its head (and at least every `RECHECK` seconds, so an edit that keeps
the head is still found); builds and registries are read on each page, each failure named in its own section
rather than failing the page.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from conveyor.errors import ConveyorError
from conveyor.package import BuildRecord, find_build, list_builds
from conveyor.registry import ModelRegistry, ModelVersionInfo
from conveyor.release import AuditEntry, LedgerSnapshot, audit_entries, read_snapshot
from conveyor.release.ledger import Ledger
from conveyor.testing.reports import JunitOutcomes, junit_outcomes

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.config import Project

RECHECK = 30.0
LINEAGE = ("git_commit", "git_dirty", "data_digest", "data_files", "training_sandbox")
T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """A part of the page that could not be read: what, and why (shown instead of that part)."""

    what: str
    why: str


@dataclass(frozen=True)
class GateRow:
    """One gate rule of a build: the metric, its value on the sealed set, the rule, the champion's, the result."""

    metric: str
    value: float | None
    rule: str
    champion: float | None
    passed: bool
    note: str


@dataclass(frozen=True)
class BuildView:
    """A build as the dashboard shows it: model and lineage, test and gate summaries, attestations."""

    record: BuildRecord
    tests_ok: bool | None
    tests_counts: dict[str, int]
    failing_tests: tuple[str, ...]
    coverage_percent: float | None
    coverage_dir: Path | None
    gates_ok: bool | None
    gates: tuple[GateRow, ...]
    attested: dict[str, str]
    lineage: dict[str, str]

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def short(self) -> str:
        return self.record.short


@dataclass(frozen=True)
class EnvironmentModels:
    """An environment's registry: its versions newest first (with run metrics), or why it could not be read."""

    env: str
    versions: tuple[ModelVersionInfo, ...] = ()
    problem: Problem | None = None


@dataclass(frozen=True)
class MetricSeries:
    """One gate metric across the builds of a model: (version label, value, is the champion) oldest first."""

    metric: str
    points: tuple[tuple[str, float, bool], ...]


@dataclass
class _Cached:
    head: str | None = None
    at: float = 0.0
    snapshot: LedgerSnapshot | None = None
    problem: Problem | None = None


@dataclass
class ProjectReader:
    """The read side of one project for the dashboard (thread-safe; the ledger verified once per change)."""

    project: Project
    clock: Callable[[], float] = time.monotonic
    _cache: _Cached = field(default_factory=_Cached)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the ledger --------------------------------------------------------------------------------------
    def snapshot(self) -> tuple[LedgerSnapshot | None, Problem | None]:
        """The verified reading of the ledger (cached while its head holds), or why it could not be read."""
        with self._lock:
            try:
                ledger = Ledger.open(self.project)
                ledger.prefix_file = None  # the audit page's verdict is a walk of the whole chain, per head change
            except ConveyorError as exc:
                return None, Problem("the release ledger", exc.message)
            try:
                head = ledger.head()
                cached = self._cache
                fresh = self.clock() - cached.at < RECHECK
                if cached.snapshot is not None and cached.head == head and fresh:
                    return cached.snapshot, None
                snapshot = read_snapshot(self.project, ledger=ledger)
                self._cache = _Cached(head, self.clock(), snapshot)
                return snapshot, None
            except ConveyorError as exc:
                return None, Problem("the release ledger", exc.message)
            finally:
                ledger.close()

    def audit(self, limit: int = 200) -> tuple[list[AuditEntry], Problem | None]:
        return self._guard("the ledger's events", lambda: audit_entries(self.project, limit=limit), [])

    # --- builds ------------------------------------------------------------------------------------------
    def builds(self) -> tuple[list[BuildView], Problem | None]:
        return self._guard("the builds", lambda: [build_view(r) for r in list_builds(self.project.state_dir)], [])

    def build(self, digest: str) -> BuildView | None:
        """The build with this package digest (or a unique prefix of at least 4 hex digits); None if none."""
        try:
            return build_view(find_build(self.project.state_dir, digest))
        except ConveyorError:
            return None

    # --- models ------------------------------------------------------------------------------------------
    def models(self, per_model: int = 50) -> list[EnvironmentModels]:
        found = []
        for env in self.project.config.environments:
            try:
                registry = ModelRegistry(self.project.environment(env))
                reader = registry.reader
                versions = []
                for name in registry.model_names():
                    for version in registry.versions(name)[:per_model]:
                        metrics, params = reader.run_data(version.run_id) if version.run_id else ({}, {})
                        versions.append(version.with_run(metrics, params))
                found.append(EnvironmentModels(env, tuple(versions)))
            except (ConveyorError, OSError) as exc:
                why = exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
                found.append(EnvironmentModels(env, problem=Problem(f"the {env} registry", why)))
        return found

    def _guard(self, what: str, read: Callable[[], T], empty: T) -> tuple[T, Problem | None]:
        try:
            return read(), None
        except ConveyorError as exc:
            return empty, Problem(what, exc.message)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def build_view(record: BuildRecord) -> BuildView:
    """A build record's summaries, typed; the JUnit report read for failing test names when it is still there."""
    tests = record.tests or {}
    counts = {k: _count(tests.get(k)) for k in ("passed", "failed", "errors", "skipped")}
    failing: tuple[str, ...] = ()
    coverage_dir = None
    junit = tests.get("junit")
    if isinstance(junit, str) and Path(junit).is_file():
        try:
            outcomes: JunitOutcomes = junit_outcomes(Path(junit))
            failing = outcomes.failed
        except Exception:
            failing = ()
    coverage_xml = tests.get("coverage_xml")
    if isinstance(coverage_xml, str) and (Path(coverage_xml).parent / "htmlcov" / "index.html").is_file():
        coverage_dir = Path(coverage_xml).parent / "htmlcov"
    gates = record.gates or {}
    rows = tuple(
        GateRow(
            metric=str(r.get("metric")),
            value=_float(r.get("value")),
            rule=str(r.get("rule")),
            champion=_float(r.get("champion")),
            passed=bool(r.get("passed")),
            note=str(r.get("note") or ""),
        )
        for r in _items(gates.get("results"))
        if isinstance(r, dict)
    )
    model = record.model
    tags = model.tags if model else {}
    lineage = {k: tags[k] for k in LINEAGE if k in tags}
    attested = record.data.get("attested")
    return BuildView(
        record=record,
        tests_ok=_flag(tests.get("ok")),
        tests_counts=counts,
        failing_tests=failing,
        coverage_percent=_float(tests.get("coverage_percent")),
        coverage_dir=coverage_dir,
        gates_ok=_flag(gates.get("ok")),
        gates=rows,
        attested={str(k): str(v) for k, v in attested.items()} if isinstance(attested, dict) else {},
        lineage=lineage,
    )


def metric_series(builds: list[BuildView], champions: set[str]) -> list[MetricSeries]:
    """Each gate metric across the builds (oldest first), the builds whose package is live in a stage marked."""
    series: dict[str, list[tuple[str, float, bool]]] = {}
    for build in reversed(builds):
        label = build.record.model_ref() if build.record.model else build.short
        for row in build.gates:
            if row.value is not None:
                series.setdefault(row.metric, []).append((label, row.value, build.digest in champions))
    return [MetricSeries(metric, tuple(points)) for metric, points in sorted(series.items())]
