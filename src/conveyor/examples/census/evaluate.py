"""The evaluation function the quality gates call on the sealed evaluation set.

It runs inside the build's image, with the network off and an empty environment: it may use the standard library
and whatever the model's own requirements put in the image, nothing else (so no pandas or scikit-learn here).
"""

from __future__ import annotations

import csv
from pathlib import Path

FEATURES = ("age", "hours-per-week")
TARGET = "fnlwgt"


def evaluate(model, data: Path) -> dict[str, float]:
    """MAE and R² of `model` (the loaded inference.model.WageModel) on the sealed CSV at `data`, in fnlwgt units."""
    truth: list[float] = []
    predicted: list[float] = []
    with data.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, skipinitialspace=True):
            row = {str(k).strip(): v for k, v in row.items()}
            truth.append(float(row[TARGET]))
            predicted.append(model.predict(float(row["age"]), float(row["hours-per-week"])))
    mean = sum(truth) / len(truth)
    residual = sum((t - p) ** 2 for t, p in zip(truth, predicted, strict=True))
    total = sum((t - mean) ** 2 for t in truth)
    mae = sum(abs(t - p) for t, p in zip(truth, predicted, strict=True)) / len(truth)
    return {"mae": mae, "r2": 1.0 - residual / total if total else 0.0}
