"""The evaluation function the quality gates call on the sealed evaluation set."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score


def evaluate(model, frame: pd.DataFrame) -> dict[str, float]:
    """Metrics of `model` (the loaded inference.model.WageModel) on `frame` (census rows), in fnlwgt units."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    features = frame[["age", "hours-per-week"]].to_numpy(dtype=float)
    truth = frame["fnlwgt"].to_numpy(dtype=float)
    predicted = features @ np.asarray(model.weights) + model.bias
    return {"mae": float(mean_absolute_error(truth, predicted)), "r2": float(r2_score(truth, predicted))}
