"""The served package's drift in /metrics: a `DriftWindow` fed from the records the server scores, compared with the
package's training profile when /metrics is scraped.

Gauges: `conveyor_drift_available{package}` (1 when the package holds a training profile, else 0: no drift is
reported, and the server's log says why), `conveyor_drift_window_records{package}`, and per profiled feature
`conveyor_drift_psi{package,feature}` and, for numeric features, `conveyor_drift_ks_pvalue{package,feature}`.
With several workers each keeps its own window of the records it scored; a scrape reports the window of the worker
that answers it (a sample of the server's traffic, not the sum of the workers').
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from conveyor.drift import DriftReport, DriftWindow

log = logging.getLogger("conveyor.serving")

WINDOW_RECORDS = 10_000
PROFILE_FILE = "profile.json"  # conveyor.drift.PROFILE_FILE, named here so that a package without one needs no numpy


def open_window(package_dir: Path, capacity: int = WINDOW_RECORDS) -> tuple[DriftWindow | None, str | None]:
    """A drift window over the package's training profile, or None and why drift is unavailable (numpy is
    imported only for a package that has a profile)."""
    if not (package_dir / PROFILE_FILE).is_file():
        return None, f"the package {package_dir} holds no training profile ({PROFILE_FILE})"
    try:
        from conveyor.drift import DriftWindow, read_profile
    except ImportError as exc:
        return None, f"drift needs numpy in the server's environment ({exc})"
    try:
        profile = read_profile(package_dir)
    except ConveyorError as exc:
        return None, exc.message
    if profile is None:
        return None, f"the package {package_dir} holds no training profile (profile.json)"
    if not profile.features:
        return None, "the package's training profile has no features"
    return DriftWindow(profile, capacity), None


class DriftCollector:
    """prometheus_client collector of the drift gauges, computed from the window when collected (the report is
    kept until more records arrive)."""

    def __init__(self, package: str, window: DriftWindow | None, reason: str | None) -> None:
        self.package = package
        self.window = window
        self.reason = reason
        self._report: DriftReport | None = None
        self._seen = -1
        if window is None:
            log.info("drift is unavailable: %s", reason)

    def report(self) -> DriftReport:
        from conveyor.drift import unavailable

        window = self.window
        if window is None:
            return unavailable(self.reason or "no training profile")
        if self._report is None or window.seen != self._seen:
            self._report, self._seen = window.report(), window.seen
        return self._report

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        package = self.package
        available = GaugeMetricFamily(
            "conveyor_drift_available",
            "1 when the package holds a training profile to compare with.",
            labels=["package"],
        )
        available.add_metric([package], 1.0 if self.window is not None else 0.0)
        yield available
        if self.window is None:
            return
        report = self.report()
        records = GaugeMetricFamily(
            "conveyor_drift_window_records", "Scored records in the drift window.", labels=["package"]
        )
        records.add_metric([package], float(report.records))
        yield records
        psi = GaugeMetricFamily(
            "conveyor_drift_psi",
            "Population stability index of a feature: the window against the training profile.",
            labels=["package", "feature"],
        )
        ks = GaugeMetricFamily(
            "conveyor_drift_ks_pvalue",
            "Two-sample Kolmogorov-Smirnov p-value of a numeric feature: the window against the training sample.",
            labels=["package", "feature"],
        )
        for name, drift in sorted(report.features.items()):
            psi.add_metric([package, name], drift.psi)
            if drift.ks_pvalue is not None:
                ks.add_metric([package, name], drift.ks_pvalue)
        yield psi
        yield ks
