"""The synthetic AdultCensusIncome.csv: the public file's format, plausible values, seeded."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.examples.census_data import COLUMNS, EDUCATION, census_frame, write_census_csv

HEADER = (
    "age, workclass, fnlwgt, education, education-num, marital-status, occupation, relationship, race, sex, "
    "capital-gain, capital-loss, hours-per-week, native-country, income"
)


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("census") / "AdultCensusIncome.csv"
    write_census_csv(path, rows=5000, seed=0)
    return path.read_text()


@pytest.fixture(scope="module")
def frame(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), skipinitialspace=True)


def test_format_matches_the_public_file(text: str) -> None:
    lines = text.splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 5001 and text.endswith("\n")
    for line in lines[1:50]:
        fields = line.split(", ")
        assert len(fields) == 15 and all(f == f.strip() and f for f in fields)
        assert "," not in "".join(fields)


def test_pandas_reads_it_with_the_lab_columns(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 5000
    for column in ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"):
        assert pd.api.types.is_integer_dtype(frame[column]), column


def test_values_are_plausible(frame: pd.DataFrame) -> None:
    assert frame["age"].between(17, 90).all() and 34 < frame["age"].mean() < 43
    assert frame["fnlwgt"].between(12_000, 1_500_000).all()
    assert 150_000 < frame["fnlwgt"].median() < 210_000
    assert frame["hours-per-week"].between(1, 99).all() and frame["hours-per-week"].mode()[0] == 40
    assert (frame["capital-gain"] == 0).mean() > 0.85 and (frame["capital-loss"] == 0).mean() > 0.9
    assert (frame["native-country"] == "United-States").mean() > 0.8
    assert 0.02 < (frame["occupation"] == "?").mean() < 0.1
    assert set(frame["income"]) == {"<=50K", ">50K"} and 0.15 < (frame["income"] == ">50K").mean() < 0.35
    assert set(frame["sex"]) == {"Male", "Female"}
    numbers = {name: number for name, (number, _) in EDUCATION.items()}
    assert (frame["education"].map(numbers) == frame["education-num"]).all()
    husbands = frame[frame["relationship"] == "Husband"]
    assert (husbands["sex"] == "Male").all() and husbands["marital-status"].str.startswith("Married").all()


def test_income_follows_education_and_fnlwgt_has_a_tiny_signal(frame: pd.DataFrame) -> None:
    rich = frame["income"] == ">50K"
    assert rich[frame["education-num"] >= 13].mean() > 2 * rich[frame["education-num"] <= 9].mean()
    x = np.column_stack([np.ones(len(frame)), frame["age"], frame["hours-per-week"]])
    y = frame["fnlwgt"].to_numpy(float)
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    r2 = 1 - residual.var() / y.var()
    assert 0.002 < r2 < 0.1


def test_seeded_and_deterministic(tmp_path: Path) -> None:
    write_census_csv(tmp_path / "a.csv", rows=500, seed=7)
    write_census_csv(tmp_path / "b.csv", rows=500, seed=7)
    write_census_csv(tmp_path / "c.csv", rows=500, seed=8)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert census_frame(500, 7).equals(pd.read_csv(tmp_path / "a.csv", skipinitialspace=True))


def test_writes_to_text_and_binary_handles(tmp_path: Path) -> None:
    text, binary = io.StringIO(), io.BytesIO()
    write_census_csv(text, rows=20, seed=1)
    write_census_csv(binary, rows=20, seed=1)
    assert binary.getvalue().decode() == text.getvalue()
    write_census_csv(tmp_path / "deep" / "er" / "AdultCensusIncome.csv", rows=20, seed=1)
    assert (tmp_path / "deep" / "er" / "AdultCensusIncome.csv").read_text() == text.getvalue()


def test_fast() -> None:
    start = time.perf_counter()
    census_frame(5000, 3)
    write_census_csv(io.StringIO(), rows=5000, seed=3)
    assert time.perf_counter() - start < 1.0
