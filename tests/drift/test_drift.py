"""Profiles and drift on the census example's data: a shifted copy is flagged, a fresh sample is not."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.drift import DriftWindow, TrainingProfile, profile_frame, read_profile
from conveyor.drift.profile import OTHER, SAMPLE_SIZE
from conveyor.errors import ConveyorError
from conveyor.examples.census_data import write_census_csv

FEATURES = ["age", "hours-per-week", "sex", "occupation", "workclass"]


def census(tmp_path: Path, rows: int, seed: int) -> pd.DataFrame:
    path = tmp_path / f"census-{rows}-{seed}.csv"
    write_census_csv(path, rows=rows, seed=seed)
    frame = pd.read_csv(path, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return census(tmp_path_factory.mktemp("census"), 6000, 3)


@pytest.fixture(scope="module")
def profile(training: pd.DataFrame) -> TrainingProfile:
    return profile_frame(training, FEATURES)


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    moved = frame.copy()
    moved["age"] = moved["age"] + 15
    moved["hours-per-week"] = moved["hours-per-week"] * 1.5
    return moved


def test_the_profile_holds_bins_nulls_sample_and_categories(training, profile, tmp_path) -> None:
    age = profile.features["age"]
    assert age.kind == "numeric" and len(age.fractions) == len(age.edges) + 1 == 10
    assert sum(age.fractions) == pytest.approx(1.0) and max(age.fractions) < 0.2  # deciles of the training ages
    assert len(age.sample) == SAMPLE_SIZE and min(age.sample) >= training["age"].min()
    occupation = profile.features["occupation"]
    assert occupation.kind == "categorical" and dict(occupation.categories)[OTHER] >= 0
    assert sum(f for _, f in occupation.categories) == pytest.approx(1.0)
    with_nulls = training.assign(age=training["age"].astype(float).where(training.index % 4 != 0))
    assert profile_frame(with_nulls, ["age"]).features["age"].null_fraction == pytest.approx(0.25)
    profile.write(tmp_path)
    first = (tmp_path / "profile.json").read_bytes()
    profile_frame(training, FEATURES).write(tmp_path)
    assert (tmp_path / "profile.json").read_bytes() == first, "the same data gives the same bytes (same digest)"
    assert read_profile(tmp_path) == profile


def test_a_shifted_copy_drifts_and_a_fresh_sample_does_not(training, profile, tmp_path) -> None:
    fresh = census(tmp_path, 3000, 11)
    window = DriftWindow(profile)
    window.add_records(fresh.to_dict("records"))
    steady = window.report()
    assert steady.records == 3000
    for name in FEATURES:
        assert steady.features[name].psi < 0.1, (name, steady.features[name])
    assert steady.features["age"].ks_pvalue > 0.01

    window = DriftWindow(profile)
    window.add_records(shifted(fresh).to_dict("records"))
    moved = window.report()
    for name in ("age", "hours-per-week"):
        assert moved.features[name].psi > 0.2 and moved.features[name].shifted
        pvalue = moved.features[name].ks_pvalue
        assert pvalue is not None and pvalue < 0.01
    assert moved.features["sex"].psi < 0.1, "the features that did not move stay put"


def test_a_random_sample_of_the_training_rows_does_not_drift(training, profile) -> None:
    window = DriftWindow(profile)
    sample = training.sample(2000, random_state=42)
    window.add_columns(dict(pa.RecordBatch.from_pandas(sample, preserve_index=False).to_pydict()), len(sample))
    report = window.report()
    assert all(f.psi < 0.1 for f in report.features.values()), report.to_json()


def test_nulls_and_unknown_categories_count_as_drift(profile) -> None:
    window = DriftWindow(profile)
    window.add_records([{"age": None, "hours-per-week": "forty", "sex": "Neither", "occupation": None}] * 500)
    report = window.report()
    assert report.features["age"].null_fraction == 1.0 and report.features["age"].psi > 0.2
    assert report.features["hours-per-week"].null_fraction == 1.0, "what is not a number counts as null"
    assert report.features["sex"].psi > 0.2, "a category training never saw is drift"
    assert report.features["workclass"].null_fraction == 1.0, "a feature the records lack is null"


def test_the_window_keeps_its_memory_after_many_batches(profile, training) -> None:
    records = training.head(1000).to_dict("records")
    window = DriftWindow(profile, capacity=10_000)
    fixed = window.nbytes
    assert fixed == 10_000 * (8 * 2 + 2 * 3), "8 bytes a numeric value, 2 a categorical one"
    for _ in range(20):
        window.add_records(records)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(300):
        window.add_records(records)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"300 batches of 1,000 records grew the window by {grown} bytes"
    assert window.nbytes == fixed and window.records == 10_000 and window.seen == 320_000
    assert np.array_equal(np.sort(window.values("age")), np.sort(np.tile(training.head(1000)["age"], 10)))


def test_a_damaged_profile_names_the_file_and_the_fix(tmp_path) -> None:
    (tmp_path / "profile.json").write_text(json.dumps({"schema": "conveyor.profile/1", "features": {"a": {}}}))
    with pytest.raises(ConveyorError, match=r"profile\.json is not a training profile") as caught:
        read_profile(tmp_path)
    assert "conveyor build" in (caught.value.hint or "")
    assert read_profile(tmp_path / "nowhere") is None
