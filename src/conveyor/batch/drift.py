"""The drift report of a batch job: the input's rows against the package's training profile, as JSON beside the
scored output (`OUTPUT.drift.json` in the lake), written when the package holds a profile.

The report compares the first `DRIFT_ROWS` rows of the input (all of them when there are fewer), read again on
this machine whatever engine scored them, so its cost is bounded however large the input is.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.batch.datasets import InputDataset, read_sample
from conveyor.drift import DriftReport, DriftWindow, read_profile, unavailable

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.lake import Lake

DRIFT_ROWS = 100_000
SUFFIX = ".drift.json"


@dataclass(frozen=True)
class BatchDrift:
    """The drift of a job's input, and the lake path of its report file (None when there is no profile)."""

    report: DriftReport
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"available": self.report.available, "report": self.path}
        if self.report.reason:
            data["reason"] = self.report.reason
        return data


def drift_report_path(output_path: str) -> str:
    """Where the drift report of the output at `output_path` goes: beside it, `OUTPUT.drift.json`."""
    return posixpath.normpath(output_path).rstrip("/") + SUFFIX


def input_drift(lake: Lake, dataset: InputDataset, package_dir: Path, rows: int = DRIFT_ROWS) -> DriftReport:
    """PSI and KS of the input's first `rows` rows against the package's training profile."""
    profile = read_profile(package_dir)
    if profile is None:
        return unavailable(f"the package {package_dir} holds no training profile (profile.json)")
    sample = read_sample(lake, dataset, rows)
    window = DriftWindow(profile, max(1, sample.num_rows))
    names = set(sample.schema.names)
    window.add_columns({name: sample.column(name) for name in profile.features if name in names}, sample.num_rows)
    return window.report()


def write_batch_drift(
    lake: Lake, dataset: InputDataset, package_dir: Path, output_path: str, package: dict[str, Any]
) -> BatchDrift:
    """Compare the input with the package's profile and write the report beside the output (when there is one)."""
    report = input_drift(lake, dataset, package_dir)
    if not report.available:
        return BatchDrift(report, None)
    path = drift_report_path(output_path)
    document = {
        "package": package,
        "input": dataset.path,
        "compared": f"the first {report.records} rows of the input",
        **report.to_json(),
    }
    with lake.open(path, "wb") as handle:
        handle.write((json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return BatchDrift(report, path)
