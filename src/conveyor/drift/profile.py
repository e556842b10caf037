"""`profile.json`: what the training data looked like, feature by feature, recorded in the package at build time.

A numeric feature keeps quantile bin edges of its training values with the training fraction in each bin (the
outer bins are open, so live values beyond the training range still land in one), its null fraction, and a seeded
sample of at most `SAMPLE_SIZE` training values (for the KS test). A categorical feature keeps the fractions of its
most frequent categories, of all the others together (`OTHER`), and of nulls.

The file is written byte for byte the same from the same data (sorted keys, seeded sample), so the package digest
of an unchanged model stays the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pandas as pd

PROFILE_FILE = "profile.json"
PROFILE_SCHEMA = "conveyor.profile/1"
BINS = 10
SAMPLE_SIZE = 1000
TOP_CATEGORIES = 20
SEED = 20240601
OTHER = "__other__"
NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class FeatureProfile:
    """One feature of the training data. Numeric: `edges` (interior bin edges, ascending) and `fractions`
    (len(edges) + 1 bins), `sample`. Categorical: `categories` (name → fraction, `OTHER` included)."""

    name: str
    kind: str
    rows: int
    null_fraction: float
    edges: tuple[float, ...] = ()
    fractions: tuple[float, ...] = ()
    sample: tuple[float, ...] = ()
    categories: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> dict[str, object]:
        data: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "null_fraction": self.null_fraction}
        if self.kind == NUMERIC:
            data.update(edges=list(self.edges), fractions=list(self.fractions), sample=list(self.sample))
        else:
            data["categories"] = [[name, fraction] for name, fraction in self.categories]  # most frequent first
        return data

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> FeatureProfile:
        kind = data["kind"]
        common = {"name": name, "kind": kind, "rows": int(data["rows"]), "null_fraction": float(data["null_fraction"])}
        if kind == NUMERIC:
            return cls(
                **common,
                edges=tuple(float(v) for v in data["edges"]),
                fractions=tuple(float(v) for v in data["fractions"]),
                sample=tuple(float(v) for v in data["sample"]),
            )
        if kind == CATEGORICAL:
            return cls(**common, categories=tuple((str(k), float(v)) for k, v in data["categories"]))
        raise ValueError(f"feature {name!r} has kind {kind!r}; a profile knows {NUMERIC} and {CATEGORICAL}")


@dataclass(frozen=True)
class TrainingProfile:
    """The profile of a model's training data: its features and where the data came from (`source`)."""

    features: dict[str, FeatureProfile]
    rows: int
    source: dict[str, object]

    def to_json(self) -> dict[str, object]:
        return {
            "schema": PROFILE_SCHEMA,
            "rows": self.rows,
            "source": self.source,
            "features": {name: feature.to_json() for name, feature in sorted(self.features.items())},
        }

    def write(self, package_dir: Path) -> Path:
        """Write `package_dir/profile.json` (canonical: sorted keys, the same bytes for the same profile)."""
        path = package_dir / PROFILE_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True, allow_nan=False) + "\n")
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingProfile:
        features = {str(n): FeatureProfile.from_json(str(n), f) for n, f in dict(data["features"]).items()}
        return cls(features, int(data["rows"]), dict(data.get("source") or {}))


def read_profile(package_dir: Path) -> TrainingProfile | None:
    """The package's training profile, or None when it has none; a damaged profile.json is an error."""
    path = Path(package_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != PROFILE_SCHEMA:
            raise ValueError(f"schema is {data.get('schema')!r}, not {PROFILE_SCHEMA!r}")
        return TrainingProfile.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConveyorError(
            f"{path} is not a training profile conveyor can read ({exc})",
            hint="Rebuild the package with `conveyor build`; never edit a built package.",
        ) from None


def _rounded(value: float) -> float:
    """Twelve significant digits: the same text from the same data on every platform."""
    return float(f"{value:.12g}")


def _numeric(name: str, values: np.ndarray, rows: int, rng: np.random.Generator) -> FeatureProfile:
    values = values.astype(np.float64, copy=False)
    present = values[np.isfinite(values)]
    null_fraction = _rounded(1 - len(present) / rows) if rows else 0.0
    if not len(present):
        return FeatureProfile(name, NUMERIC, rows, null_fraction, (), (1.0,), ())
    quantiles = np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])
    edges = np.unique(np.array([_rounded(float(q)) for q in quantiles]))
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    fractions = tuple(_rounded(float(c) / len(present)) for c in counts)
    chosen = present if len(present) <= SAMPLE_SIZE else rng.choice(present, SAMPLE_SIZE, replace=False)
    sample = tuple(_rounded(float(v)) for v in np.sort(chosen))
    return FeatureProfile(name, NUMERIC, rows, null_fraction, tuple(float(e) for e in edges), fractions, sample)


def _categorical(name: str, values: Iterable[Any], rows: int) -> FeatureProfile:
    counts: dict[str, int] = {}
    nulls = 0
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            nulls += 1
        else:
            key = str(value)
            counts[key] = counts.get(key, 0) + 1
    present = rows - nulls
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = ranked[:TOP_CATEGORIES]
    other = present - sum(count for _, count in top)
    categories = [(key, _rounded(count / present)) for key, count in top] if present else []
    categories.append((OTHER, _rounded(other / present) if present else 0.0))
    return FeatureProfile(
        name, CATEGORICAL, rows, _rounded(nulls / rows) if rows else 0.0, categories=tuple(categories)
    )


def profile_frame(
    frame: pd.DataFrame, features: Iterable[str] | None = None, source: Mapping[str, object] | None = None
) -> TrainingProfile:
    """The profile of a pandas DataFrame (or anything with `columns` and columns with `to_numpy()`): the named
    `features`, or every column. Numeric columns (integers, floats) are binned, the others counted as categories."""
    names = [str(c) for c in frame.columns] if features is None else list(features)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ConveyorError(
            f"the training data has no column {missing[0]!r} (it has: {', '.join(map(str, frame.columns))})",
            hint="Name features that are columns of the data the model was trained on.",
        )
    rows = len(frame)
    rng = np.random.default_rng(SEED)
    profiled = {}
    for name in names:
        column = frame[name].to_numpy()
        if column.dtype.kind in "iuf":
            profiled[name] = _numeric(name, column, rows, rng)
        else:
            profiled[name] = _categorical(name, column.tolist(), rows)
    return TrainingProfile(profiled, rows, dict(source or {}))
