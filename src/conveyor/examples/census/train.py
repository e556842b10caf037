"""Train "the world's worst regression": fnlwgt from age and hours-per-week.

Runs unchanged in every environment: `conveyor train --env dev|stage|prod` hands it that environment's lake,
secrets and registry through `conveyor.context()`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import conveyor
from inference.model import WageModel

FEATURES = ["age", "hours-per-week"]
TARGET = "fnlwgt"
DATA_FILE = "AdultCensusIncome.csv"


def load(handle) -> pd.DataFrame:
    """Read the census CSV; the public file writes ", " between fields, so names and values are stripped."""
    frame = pd.read_csv(handle, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_census(ctx) -> pd.DataFrame:
    """The census table from the environment's lake: with Spark when the environment computes on Spark."""
    if ctx.uses_spark:
        spark_frame = ctx.spark().read.csv(
            ctx.spark_url(DATA_FILE), header=True, inferSchema=True, ignoreLeadingWhiteSpace=True
        )
        frame = spark_frame.select(*[c for c in spark_frame.columns if c.strip() in (*FEATURES, TARGET)]).toPandas()
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame
    with ctx.lake.open(DATA_FILE, "rb") as handle:
        return load(handle)


def fit(frame: pd.DataFrame):
    """Scale x and y, fit a linear regression; return the fitted parts and test metrics in fnlwgt units."""
    x = frame[FEATURES].to_numpy(dtype=float)
    y = frame[[TARGET]].to_numpy(dtype=float)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.33, random_state=777)
    x_scaler = StandardScaler().fit(x_train)
    y_scaler = StandardScaler().fit(y_train)
    model = LinearRegression().fit(x_scaler.transform(x_train), y_scaler.transform(y_train))
    predicted = y_scaler.inverse_transform(model.predict(x_scaler.transform(x_test)))
    metrics = {
        "mae": float(mean_absolute_error(y_test, predicted)),
        "r2": float(r2_score(y_test, predicted)),
        "rows_train": float(len(x_train)),
        "rows_test": float(len(x_test)),
    }
    return x_scaler, y_scaler, model, metrics


def save(out_dir: Path, x_scaler, y_scaler, model) -> None:
    """The three fitted objects, and the linear function they make together (scoring needs only that)."""
    for name, obj in (("x_scaler", x_scaler), ("y_scaler", y_scaler), ("model", model)):
        with open(out_dir / f"{name}.pkl", "wb") as handle:
            pickle.dump(obj, handle)
    weights, bias = WageModel.fold(x_scaler, y_scaler, model)
    folded = {"features": FEATURES, "weights": weights, "bias": bias}
    (out_dir / "weights.json").write_text(json.dumps(folded, indent=2))


def main() -> None:
    ctx = conveyor.context()
    frame = read_census(ctx)
    print(f"read {len(frame)} rows from {DATA_FILE} in the {ctx.env} lake")
    x_scaler, y_scaler, model, metrics = fit(frame)
    ctx.log_params({"features": ",".join(FEATURES), "target": TARGET, "test_size": 0.33, "random_state": 777})
    ctx.log_metrics(metrics)
    print(f"mae={metrics['mae']:.1f} r2={metrics['r2']:.4f} (fnlwgt units, held-out 33%)")
    save(ctx.output_dir, x_scaler, y_scaler, model)
    assert np.isfinite(metrics["mae"])
    ctx.register_model(ctx.output_dir, "worst_regression", tags={"algorithm": "LinearRegression"})


if __name__ == "__main__":
    main()
