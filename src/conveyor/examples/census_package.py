"""A census package laid out as `conveyor build` lays it out, fitted on generated rows (for tests and benchmarks)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from conveyor.drift import profile_frame
from conveyor.examples.census_data import write_census_csv

CENSUS = Path(__file__).parent / "census"


def write_census_package(dest: Path, rows: int = 600, seed: int = 3, version: str = "1") -> Path:
    """`dest/package` with score.py, inference/ and model/ fitted by the example's own train.py functions, and the
    profile.json of the rows it was fitted on (of the model's features, as `conveyor build` records it)."""
    if str(CENSUS) not in sys.path:
        sys.path.insert(0, str(CENSUS))  # train.py imports the example's inference package
    spec = importlib.util.spec_from_file_location("census_train", CENSUS / "train.py")
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    package = dest / "package"
    (package / "model").mkdir(parents=True)
    write_census_csv(dest / "census.csv", rows=rows, seed=seed)
    with open(dest / "census.csv", "rb") as handle:
        frame = train.load(handle)
    x_scaler, y_scaler, model, _ = train.fit(frame)
    train.save(package / "model", x_scaler, y_scaler, model)
    profile_frame(frame, train.FEATURES, {"files": ["census.csv"]}).write(package)
    shutil.copy(CENSUS / "score.py", package / "score.py")
    shutil.copytree(CENSUS / "inference", package / "inference", ignore=shutil.ignore_patterns("__pycache__"))
    (package / "manifest.json").write_text(json.dumps({"model": {"name": "census", "version": version}}))
    return package
