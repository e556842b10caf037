"""The wage model: loads the scalers and the regression once, then predicts in fnlwgt units."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from inference.transforms import parse_columns, parse_request, to_response

EXAMPLE_REQUEST = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}


def model_dir() -> Path:
    """Where the model files are: `CONVEYOR_MODEL_DIR` (set by conveyor), or Azure ML's `AZUREML_MODEL_DIR`."""
    for name in ("CONVEYOR_MODEL_DIR", "AZUREML_MODEL_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name])
    raise RuntimeError("CONVEYOR_MODEL_DIR is not set: run through `conveyor serve` or `conveyor test`")


class WageModel:
    """x → x_scaler → LinearRegression → y_scaler⁻¹, folded into one linear function for speed.

    `weights.json` (written by train.py) holds the folded function, so scoring needs neither scikit-learn nor
    the pickles; the fitted objects themselves are unpickled on first use (`x_scaler`, `y_scaler`, `model`).
    """

    def __init__(self, directory: Path, weights: list[float], bias: float) -> None:
        self.directory = directory
        self.weights = np.asarray(weights, dtype=float)
        self.bias = float(bias)
        self._w0, self._w1 = (float(v) for v in weights)
        self._fitted: dict[str, Any] = {}

    @staticmethod
    def fold(x_scaler: Any, y_scaler: Any, model: Any) -> tuple[list[float], float]:
        """y = ((x - mx) / sx · w + b) · sy + my  ==  x · weights + bias."""
        sy, my = float(y_scaler.scale_[0]), float(y_scaler.mean_[0])
        w = np.ravel(model.coef_) / x_scaler.scale_
        bias = (np.ravel(model.intercept_)[0] - w @ x_scaler.mean_) * sy + my
        return [float(v) for v in w * sy], float(bias)

    @classmethod
    def load(cls, directory: Path | None = None) -> WageModel:
        directory = directory or model_dir()
        folded = directory / "weights.json"
        if folded.exists():
            data = json.loads(folded.read_text())
            return cls(directory, data["weights"], data["bias"])
        model = cls(directory, [0.0, 0.0], 0.0)
        weights, bias = cls.fold(model.x_scaler, model.y_scaler, model.model)
        return cls(directory, weights, bias)

    def _unpickle(self, name: str) -> Any:
        if name not in self._fitted:
            with open(self.directory / f"{name}.pkl", "rb") as handle:
                self._fitted[name] = pickle.load(handle)
        return self._fitted[name]

    @property
    def x_scaler(self) -> Any:
        return self._unpickle("x_scaler")

    @property
    def y_scaler(self) -> Any:
        return self._unpickle("y_scaler")

    @property
    def model(self) -> Any:
        return self._unpickle("model")

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

    def score_table(self, batch: Any) -> dict[str, np.ndarray]:
        """A pyarrow RecordBatch of census rows → `{"estimated_wages": float64 array}`, one value per row.

        Element-wise, as `predict()` computes one row, so a row gets the same value however rows are batched.
        """
        age, hours_per_week = parse_columns(batch)
        return {"estimated_wages": age * self._w0 + hours_per_week * self._w1 + self.bias}
