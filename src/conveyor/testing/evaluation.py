"""The gate's evaluation harness: `python evaluation.py PACKAGE_DIR EVALUATE_PY DATA` prints one line of metrics.

conveyor mounts this file read-only into the build's image and runs it there with the network off, the sealed
file mounted read-only and an empty environment. So it uses the standard library only: the image holds the
model's requirements and the scoring server, and nothing else is guaranteed (not conveyor, not pandas).

The project's `evaluate(model, data)` gets the model `score.init()` loaded and the sealed file's path
(`pathlib.Path`, read-only): it reads the file with what the image holds (`csv` always works) and returns
`{metric: number}`. Whatever it prints goes to the private log; only the metrics line leaves on stdout.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path


def load_evaluate(evaluate_py: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("conveyor_project_evaluate", evaluate_py)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {evaluate_py}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, "evaluate", None)
    if not callable(function):
        raise SystemExit(f"{evaluate_py.name} defines no evaluate(model, data) function")
    return function


def finite_metrics(metrics: object) -> dict[str, float]:
    """`{name: float}` from what evaluate() returned; refuses anything else and non-finite values."""
    if not isinstance(metrics, dict):
        raise SystemExit(f"evaluate() must return a dict of metric name to number, not {type(metrics).__name__}")
    clean = {}
    for name, value in metrics.items():
        try:
            if isinstance(value, str | bytes):
                raise TypeError
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            raise SystemExit(f"evaluate() returned a non-number for {name!r}") from None
    bad = sorted(name for name, value in clean.items() if not math.isfinite(value))
    if bad:
        raise SystemExit(f"evaluate() returned non-finite values for {', '.join(bad)}")
    return clean


def main(argv: list[str]) -> int:
    package_dir, evaluate_py, data = (Path(arg).resolve() for arg in argv[:3])
    metrics_out = os.dup(1)
    os.dup2(2, 1)  # anything the project's code prints goes to the private log, not into the metrics
    os.environ.clear()
    os.environ.update({"CONVEYOR_PACKAGE_DIR": str(package_dir), "CONVEYOR_MODEL_DIR": str(package_dir / "model")})
    sys.path.insert(0, str(package_dir))
    import score  # type: ignore[import-not-found]  # the packaged score.py

    score.init()
    evaluate = load_evaluate(evaluate_py)
    metrics = finite_metrics(evaluate(getattr(score, "model", None), data))
    with os.fdopen(metrics_out, "w") as out:
        out.write(json.dumps(metrics) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
