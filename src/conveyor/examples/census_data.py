"""A synthetic `AdultCensusIncome.csv` in the format of the public UCI Adult file the lab uploads to each lake.

Fields are separated by ", " (header too), categories and their frequencies follow the public file, education and
education-num match, and `income` depends on education, age, hours, marriage and capital gain. `fnlwgt` is
log-normal around 180,000 with a weak dependence on age and hours, so "the world's worst regression" has a tiny
signal to find. Seeded: the same seed gives the same bytes; another seed gives other data.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
SEPARATOR = ", "

WORKCLASS = {
    "Private": 69.7,
    "Self-emp-not-inc": 7.8,
    "Local-gov": 6.4,
    "?": 5.6,
    "State-gov": 4.0,
    "Self-emp-inc": 3.4,
    "Federal-gov": 2.9,
    "Without-pay": 0.1,
    "Never-worked": 0.1,
}
# education -> (education-num, share in percent)
EDUCATION = {
    "Preschool": (1, 0.2),
    "1st-4th": (2, 0.5),
    "5th-6th": (3, 1.0),
    "7th-8th": (4, 2.0),
    "9th": (5, 1.6),
    "10th": (6, 2.9),
    "11th": (7, 3.6),
    "12th": (8, 1.3),
    "HS-grad": (9, 32.3),
    "Some-college": (10, 22.4),
    "Assoc-voc": (11, 4.2),
    "Assoc-acdm": (12, 3.3),
    "Bachelors": (13, 16.4),
    "Masters": (14, 5.3),
    "Prof-school": (15, 1.8),
    "Doctorate": (16, 1.3),
}
MARITAL = {
    "Married-civ-spouse": 46.0,
    "Never-married": 32.8,
    "Divorced": 13.6,
    "Separated": 3.1,
    "Widowed": 3.0,
    "Married-spouse-absent": 1.3,
    "Married-AF-spouse": 0.1,
}
OCCUPATION = {
    "Prof-specialty": 12.7,
    "Craft-repair": 12.6,
    "Exec-managerial": 12.5,
    "Adm-clerical": 11.6,
    "Sales": 11.2,
    "Other-service": 10.1,
    "Machine-op-inspct": 6.1,
    "Transport-moving": 4.9,
    "Handlers-cleaners": 4.2,
    "Farming-fishing": 3.1,
    "Tech-support": 2.8,
    "Protective-serv": 2.0,
    "Priv-house-serv": 0.5,
    "Armed-Forces": 0.1,
}
RACE = {"White": 85.4, "Black": 9.6, "Asian-Pac-Islander": 3.2, "Amer-Indian-Eskimo": 1.0, "Other": 0.8}
COUNTRY = {
    "United-States": 89.6,
    "Mexico": 2.0,
    "?": 1.8,
    "Philippines": 0.6,
    "Germany": 0.4,
    "Canada": 0.4,
    "Puerto-Rico": 0.4,
    "El-Salvador": 0.3,
    "India": 0.3,
    "Cuba": 0.3,
    "England": 0.3,
    "China": 0.2,
    "Jamaica": 0.2,
    "South": 0.2,
    "Italy": 0.2,
    "Dominican-Republic": 0.2,
    "Vietnam": 0.2,
    "Guatemala": 0.2,
    "Japan": 0.2,
    "Poland": 0.2,
}
FNLWGT_RANGE = (12_285, 1_484_705)


def _pick(rng: np.random.Generator, table: dict[str, float], rows: int) -> np.ndarray:
    names = np.array(list(table), dtype=object)
    weights = np.array(list(table.values()), dtype=float)
    return names[rng.choice(len(names), size=rows, p=weights / weights.sum())]


def census_frame(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    """`rows` synthetic census records as a DataFrame with the file's column names (no leading spaces)."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    rng = np.random.default_rng(seed)

    age = np.clip(np.round(17 + rng.gamma(2.2, 9.6, rows)), 17, 90).astype(int)
    young = age < 23
    marital = _pick(rng, MARITAL, rows)
    marital[young & (rng.random(rows) < 0.8)] = "Never-married"
    married = np.isin(marital, ["Married-civ-spouse", "Married-AF-spouse"])
    # The public file counts one person per household interview: most married records are husbands.
    sex = np.where(rng.random(rows) < np.where(married, 0.89, 0.5), "Male", "Female").astype(object)
    relationship = np.where(
        marital == "Never-married",
        np.where((age < 30) & (rng.random(rows) < 0.6), "Own-child", "Not-in-family"),
        np.where(rng.random(rows) < 0.55, "Unmarried", "Not-in-family"),
    ).astype(object)
    relationship[married] = np.where(sex[married] == "Male", "Husband", "Wife")
    relationship[rng.random(rows) < 0.03] = "Other-relative"

    education = _pick(rng, {name: share for name, (_, share) in EDUCATION.items()}, rows)
    education_num = np.array([EDUCATION[name][0] for name in education], dtype=int)
    workclass = _pick(rng, WORKCLASS, rows)
    occupation = _pick(rng, OCCUPATION, rows)
    occupation[workclass == "?"] = "?"  # as in the public file: no work class, no occupation
    race = _pick(rng, RACE, rows)
    country = _pick(rng, COUNTRY, rows)

    hours = np.where(rng.random(rows) < 0.47, 40, np.round(rng.normal(40, 12, rows)))
    hours = np.where(young & (rng.random(rows) < 0.5), np.round(rng.normal(25, 8, rows)), hours)
    hours = np.clip(hours, 1, 99).astype(int)

    gain = np.where(rng.random(rows) < 0.083, np.round(rng.lognormal(8.5, 1.0, rows)), 0)
    gain = np.where((gain > 0) & (rng.random(rows) < 0.05), 99999, np.clip(gain, 0, 41310)).astype(int)
    loss = np.where(rng.random(rows) < 0.047, np.round(rng.normal(1870, 360, rows)), 0)
    loss = np.clip(loss, 0, 4356).astype(int)

    logit = (
        -9.6
        + 0.43 * education_num
        + 0.035 * age
        - 0.0003 * (age - 45) ** 2
        + 0.03 * hours
        + 1.9 * married
        + 0.3 * (sex == "Male")
        + 2.5 * (gain > 5000)
    )
    rich = rng.random(rows) < 1 / (1 + np.exp(-logit))
    income = np.where(rich, ">50K", "<=50K").astype(object)

    log_weight = np.log(180_000) - 0.004 * (age - 38) + 0.003 * (hours - 40) + rng.normal(0, 0.5, rows)
    fnlwgt = np.clip(np.round(np.exp(log_weight)), *FNLWGT_RANGE).astype(int)

    return pd.DataFrame(
        {
            "age": age,
            "workclass": workclass,
            "fnlwgt": fnlwgt,
            "education": education,
            "education-num": education_num,
            "marital-status": marital,
            "occupation": occupation,
            "relationship": relationship,
            "race": race,
            "sex": sex,
            "capital-gain": gain,
            "capital-loss": loss,
            "hours-per-week": hours,
            "native-country": country,
            "income": income,
        },
        columns=COLUMNS,
    )


def census_csv(rows: int = 5000, seed: int = 0) -> str:
    """The census file's text: ", " between fields, header first, one record a line."""
    frame = census_frame(rows, seed)
    columns = [frame[name].astype(str).to_numpy() for name in COLUMNS]
    lines = [SEPARATOR.join(COLUMNS), *(SEPARATOR.join(values) for values in zip(*columns, strict=True))]
    return "\n".join(lines) + "\n"


def write_census_csv(
    path_or_handle: str | os.PathLike[str] | IO[str] | IO[bytes], rows: int = 5000, seed: int = 0
) -> None:
    """Write `AdultCensusIncome.csv` to a path (parents created) or to an open text or binary handle."""
    text = census_csv(rows, seed)
    if isinstance(path_or_handle, str | os.PathLike):
        path = Path(path_or_handle)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        return
    handle = path_or_handle
    binary = isinstance(handle, io.RawIOBase | io.BufferedIOBase) or "b" in str(getattr(handle, "mode", ""))
    handle.write(text.encode() if binary else text)  # type: ignore[arg-type]
