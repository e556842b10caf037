"""`python -m conveyor.testing.evaluation PACKAGE_DIR EVALUATE_PY < data.csv`: metrics of a packaged model.

Runs in its own process so that each package's `score` and `inference` modules load fresh. The evaluation data
arrives on stdin and is never written to disk; the metrics leave as JSON on stdout.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    package_dir, evaluate_py = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    os.environ["CONVEYOR_MODEL_DIR"] = str(package_dir / "model")
    os.environ["CONVEYOR_PACKAGE_DIR"] = str(package_dir)
    sys.path.insert(0, str(package_dir))
    import pandas as pd
    import score  # the packaged score.py

    score.init()
    spec = importlib.util.spec_from_file_location("conveyor_project_evaluate", evaluate_py)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {evaluate_py}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = pd.read_csv(io.BytesIO(sys.stdin.buffer.read()))
    metrics = module.evaluate(getattr(score, "model", None), frame)
    clean = {str(k): float(v) for k, v in dict(metrics).items()}
    bad = [k for k, v in clean.items() if not math.isfinite(v)]
    if bad:
        raise SystemExit(f"evaluate() returned non-finite values for {', '.join(bad)}")
    sys.stdout.write(json.dumps(clean) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
