"""Running the project's `evaluate()` inside the build's image: network off, empty environment, read-only root,
no capabilities, an unprivileged user, and only the sealed copy, evaluate.py and the harness mounted read-only.

Only one line of metrics comes back. The evaluator's own output (which may quote sealed rows) goes to a private
log, and a failure is reported with a fixed message naming that log.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConveyorError

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.package.engine import ContainerEngine
    from conveyor.package.record import BuildRecord

MOUNT = "/opt/conveyor-gate"
SIGNIFICANT_DIGITS = 6
TIMEOUT = 900.0


def only_ruled(metrics: dict[str, float], rules: dict[str, str]) -> dict[str, float]:
    """The metrics a rule names, rounded to 6 significant digits: nothing else of the evaluator's output leaves."""
    return {name: float(f"{value:.{SIGNIFICANT_DIGITS}g}") for name, value in metrics.items() if name in rules}


@dataclass
class ImageEvaluator:
    """The build's image in a container engine, and the folder its private logs go to."""

    engine: ContainerEngine
    reference: str
    logs: Path

    @classmethod
    def for_build(cls, record: BuildRecord, logs: Path, say: Callable[[str], None]) -> ImageEvaluator:
        """The evaluator for `record`'s image; refuses a build without an image or a machine without an engine."""
        from conveyor.package.engine import find_engine
        from conveyor.testing.containers import ensure_image

        if not record.image:
            raise ConveyorError(
                f"build {record.short} has no image: the gates evaluate only inside the built image",
                hint="Rebuild with a container engine (podman or docker): conveyor build --engine podman.",
            )
        engine = find_engine(record.image.engine)
        if not engine.can_run:
            engine = find_engine(None)
        return cls(engine, ensure_image(record, engine, say), logs)

    def evaluate(self, evaluate_py: Path, data: Path, label: str, package: Path | None = None) -> dict[str, float]:
        """Metrics of the image's package (or `package`, mounted in its place) on `data`."""
        from conveyor.package.image import APP_DIR
        from conveyor.testing import evaluation

        package_dir = f"{MOUNT}/package" if package else APP_DIR
        mounts = [
            (Path(evaluation.__file__), f"{MOUNT}/harness.py"),
            (evaluate_py, f"{MOUNT}/evaluate.py"),
            (data, f"{MOUNT}/sealed/data{data.suffix}"),
            *([(package, f"{MOUNT}/package")] if package else []),
        ]
        volumes = [arg for source, target in mounts for arg in ("-v", f"{source.resolve()}:{target}:ro")]
        tmpfs = [] if self.engine.name == "podman" else ["--tmpfs", "/tmp"]  # noqa: S108 -- a fresh tmpfs inside the container; podman's --read-only has its own
        result = self.engine.run(
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            *tmpfs,
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "65534:65534",
            "--entrypoint",
            "python",
            "--workdir",
            "/tmp",  # noqa: S108 -- the container's own tmpfs
            *volumes,
            self.reference,
            "-I",
            f"{MOUNT}/harness.py",
            package_dir,
            f"{MOUNT}/evaluate.py",
            f"{MOUNT}/sealed/data{data.suffix}",
            check=False,
            timeout=TIMEOUT,
        )
        log = self._keep_log(label, result.stdout, result.stderr)
        metrics = _metrics_line(result.stdout) if result.returncode == 0 else None
        if metrics is None:
            raise CheckFailed(
                f"evaluating the {label} on the sealed set failed (exit status {result.returncode}); its output is "
                f"not shown, as it may quote sealed data. The full log is kept privately in {log}",
                hint="Read that log where the gate ran, fix evaluate.py or the model, and run `conveyor gate` again.",
            )
        return metrics

    def _keep_log(self, label: str, stdout: str, stderr: str) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        os.chmod(self.logs, 0o700)
        log = self.logs / f"evaluate-{label}.log"
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(f"--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}\n")
        return log


def _metrics_line(stdout: str) -> dict[str, float] | None:
    """The harness's one JSON line of finite numbers, or None when stdout holds anything else."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    try:
        data = json.loads(lines[0])
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in data.values()
    ):
        return None
    return {str(k): float(v) for k, v in data.items()}
