"""Loader shipped inside every registered model, so MLflow tools (`mlflow models serve`) can run `score.py`.

This file is copied into the model's `code/` folder and must import nothing from conveyor.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


class ScorePyfunc:
    """An MLflow pyfunc that calls the project's `score.init()` once and `score.run`/`run_batch` per predict."""

    def __init__(self, data_path: str) -> None:
        os.environ["CONVEYOR_MODEL_DIR"] = os.path.abspath(data_path)
        code_dir = os.path.dirname(os.path.abspath(__file__))
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        self.score = importlib.import_module("score")
        self.score.init()

    def predict(self, model_input: Any, params: Any = None) -> Any:
        records = model_input.to_dict(orient="records") if hasattr(model_input, "to_dict") else model_input
        if isinstance(records, dict):
            records = [records]
        if hasattr(self.score, "run_batch"):
            return self.score.run_batch(records)
        return [self.score.run(record) for record in records]


def _load_pyfunc(data_path: str) -> ScorePyfunc:
    return ScorePyfunc(data_path)
