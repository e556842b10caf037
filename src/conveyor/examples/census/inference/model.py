"""The wage model: loads the scalers and the regression once, then predicts in fnlwgt units."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from inference.transforms import parse_request, to_response

EXAMPLE_REQUEST = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}


def model_dir() -> Path:
    """Where the model files are: `CONVEYOR_MODEL_DIR` (set by conveyor), or Azure ML's `AZUREML_MODEL_DIR`."""
    for name in ("CONVEYOR_MODEL_DIR", "AZUREML_MODEL_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name])
    raise RuntimeError("CONVEYOR_MODEL_DIR is not set: run through `conveyor serve` or `conveyor test`")


class WageModel:
    """x → x_scaler → LinearRegression → y_scaler⁻¹, folded into one linear function for speed."""

    def __init__(self, x_scaler: Any, y_scaler: Any, model: Any) -> None:
        self.x_scaler, self.y_scaler, self.model = x_scaler, y_scaler, model
        # y = ((x - mx) / sx · w + b) · sy + my  ==  x · weights + bias
        sy, my = float(y_scaler.scale_[0]), float(y_scaler.mean_[0])
        w = np.ravel(model.coef_) / x_scaler.scale_
        self.weights = (w * sy).astype(float)
        self.bias = float((np.ravel(model.intercept_)[0] - w @ x_scaler.mean_) * sy + my)
        self._w0, self._w1 = (float(v) for v in self.weights)

    @classmethod
    def load(cls, directory: Path | None = None) -> WageModel:
        directory = directory or model_dir()
        parts = {}
        for name in ("x_scaler", "y_scaler", "model"):
            with open(directory / f"{name}.pkl", "rb") as handle:
                parts[name] = pickle.load(handle)
        return cls(**parts)

    def predict(self, age: float, hours_per_week: float) -> float:
        return age * self._w0 + hours_per_week * self._w1 + self.bias

    def predict_sklearn(self, features: np.ndarray) -> np.ndarray:
        """The same prediction through the fitted objects themselves (reference for tests)."""
        scaled = self.model.predict(self.x_scaler.transform(features))
        return self.y_scaler.inverse_transform(np.reshape(scaled, (-1, 1)))[:, 0]

    def score(self, raw_request: Any) -> dict[str, float]:
        return to_response(self.predict(*parse_request(raw_request)))

    def score_batch(self, raw_requests: list[Any]) -> list[dict[str, float]]:
        features = np.array([parse_request(r) for r in raw_requests], dtype=float).reshape(-1, 2)
        return [to_response(v) for v in features @ self.weights + self.bias]
