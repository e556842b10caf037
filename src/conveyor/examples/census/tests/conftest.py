"""Fixtures: the model directory conveyor hands over, or a small model fitted here when run from source."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.environ.get("CONVEYOR_PACKAGE_DIR") or str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session", autouse=True)
def model_dir(tmp_path_factory) -> Path:
    """`conveyor test` sets CONVEYOR_MODEL_DIR to the packaged model; from source we fit a tiny one."""
    if os.environ.get("CONVEYOR_MODEL_DIR"):
        return Path(os.environ["CONVEYOR_MODEL_DIR"])
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    x = np.column_stack([rng.integers(17, 90, 500), rng.integers(1, 99, 500)]).astype(float)
    y = (x @ [900.0, -300.0] + 150_000 + rng.normal(0, 5_000, 500)).reshape(-1, 1)
    x_scaler, y_scaler = StandardScaler().fit(x), StandardScaler().fit(y)
    model = LinearRegression().fit(x_scaler.transform(x), y_scaler.transform(y))
    directory = tmp_path_factory.mktemp("model")
    for name, obj in (("x_scaler", x_scaler), ("y_scaler", y_scaler), ("model", model)):
        (directory / f"{name}.pkl").write_bytes(pickle.dumps(obj))
    os.environ["CONVEYOR_MODEL_DIR"] = str(directory)
    return directory
