"""Comparing live values with a training profile: PSI per feature, and KS for numeric features.

PSI (population stability index) is sum over bins of (live − training) · ln(live / training), the bins being the
profile's (plus one for nulls); an empty bin counts as `EMPTY_BIN` so that the logarithm stays finite. The usual
reading: under 0.1 stable, 0.1 to 0.2 a moderate shift, over 0.2 a shift worth acting on. KS is the two-sample
Kolmogorov–Smirnov test (`scipy.stats.ks_2samp`) between the profile's sample of training values and the live
values; a small p-value says the two are unlikely to come from one distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.drift.profile import NUMERIC, FeatureProfile

EMPTY_BIN = 1e-4
SHIFTED_PSI = 0.2


@dataclass(frozen=True)
class FeatureDrift:
    """The drift of one feature over `records` live values; `ks_pvalue` is None for categorical features (and
    when scipy is not installed, or a side has no values)."""

    feature: str
    kind: str
    records: int
    null_fraction: float
    psi: float
    ks_pvalue: float | None

    @property
    def shifted(self) -> bool:
        return self.psi > SHIFTED_PSI

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "records": self.records,
            "null_fraction": self.null_fraction,
            "psi": self.psi,
            "ks_pvalue": self.ks_pvalue,
            "shifted": self.shifted,
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of every profiled feature over a window of `records` live records. `available` is False (with the
    reason) when the package holds no training profile: then nothing was compared."""

    available: bool
    records: int = 0
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    reason: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, Any] = {"available": self.available, "records": self.records}
        if self.reason:
            data["reason"] = self.reason
        data["features"] = {name: drift.to_json() for name, drift in sorted(self.features.items())}
        return data


def unavailable(reason: str) -> DriftReport:
    return DriftReport(False, reason=reason)


def psi(training: np.ndarray, live: np.ndarray) -> float:
    """The PSI of two fraction vectors over the same bins (each sums to 1; empty bins floored at EMPTY_BIN)."""
    expected = np.maximum(np.asarray(training, dtype=np.float64), EMPTY_BIN)
    actual = np.maximum(np.asarray(live, dtype=np.float64), EMPTY_BIN)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_pvalue(sample: np.ndarray, live: np.ndarray) -> float | None:
    """The two-sample KS p-value, or None when a side is empty or scipy is not installed."""
    if not len(sample) or not len(live):
        return None
    try:
        from scipy.stats import ks_2samp
    except ImportError:
        return None
    return float(ks_2samp(sample, live).pvalue)


def _with_nulls(fractions: np.ndarray, null_fraction: float) -> np.ndarray:
    """Bin fractions of the present values, scaled to the present share, with the null share as a last bin."""
    return np.append(fractions * (1 - null_fraction), null_fraction)


def numeric_drift(profile: FeatureProfile, values: np.ndarray) -> FeatureDrift:
    """Drift of live float values (NaN for null) against a numeric feature's profile."""
    present = values[np.isfinite(values)]
    records = len(values)
    nulls = 1 - len(present) / records if records else 0.0
    edges = np.asarray(profile.edges, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    live = counts / len(present) if len(present) else np.zeros(len(edges) + 1)
    index = psi(_with_nulls(np.asarray(profile.fractions), profile.null_fraction), _with_nulls(live, nulls))
    pvalue = ks_pvalue(np.asarray(profile.sample, dtype=np.float64), present)
    return FeatureDrift(profile.name, NUMERIC, records, nulls, index, pvalue)


def categorical_drift(profile: FeatureProfile, codes: np.ndarray) -> FeatureDrift:
    """Drift of live category codes (index into the profile's categories; -1 for null) against its profile."""
    records = len(codes)
    present = codes[codes >= 0]
    nulls = 1 - len(present) / records if records else 0.0
    training = np.array([fraction for _, fraction in profile.categories], dtype=np.float64)
    counts = np.bincount(present, minlength=len(training))[: len(training)]
    live = counts / len(present) if len(present) else np.zeros(len(training))
    index = psi(_with_nulls(training, profile.null_fraction), _with_nulls(live, nulls))
    return FeatureDrift(profile.name, profile.kind, records, nulls, index, None)
