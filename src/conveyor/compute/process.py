"""Training in a child process on this machine: the `local` compute, and the driver side of the Spark computes.

The child is `python -m conveyor.compute.runner`; its standard streams are passed on line by line with every known
secret value masked, and its result (the registered versions) comes back in a JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from conveyor.compute.base import TrainingResult, Writer
from conveyor.config import Environment
from conveyor.errors import CheckFailed, ConfigError
from conveyor.secrets import redaction

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _pump(stream: IO[str], write: Writer) -> None:
    for line in iter(stream.readline, ""):
        write(redaction.redact(line))


def preload_secrets(environment: Environment) -> None:
    """Read every secret the store holds so that this process can mask the child's output too."""
    public = environment.public_secret_keys()
    for key in environment.secrets.names():
        if key in public:
            continue
        try:
            environment.secrets.get(key)
        except Exception:
            continue


def training_script(environment: Environment) -> Path:
    """The project's training script, or a `ConfigError` saying how to point at it."""
    project = environment.project
    script = project.root / project.config.project.train
    if not script.is_file():
        raise ConfigError(
            f"training script {script} does not exist",
            hint=f"Create it, or point [project].train in {project.file} at your script.",
        )
    return script


def check_environment(environment: Environment) -> None:
    """Fail early, in this process, on a bad store, a missing secret or an unreadable setting."""
    preload_secrets(environment)
    _ = environment.lake_url, environment.state, environment.created_by, environment.registry_uri


def run_training_process(environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
    """Run `conveyor.compute.runner` for `environment` in a child process; `CheckFailed` if the script fails."""
    project = environment.project
    script = training_script(environment)
    check_environment(environment)
    with tempfile.TemporaryDirectory(prefix="conveyor-run-") as tmp:
        result_file = Path(tmp) / "result.json"
        child_env = {
            **os.environ,
            "CONVEYOR_PROJECT_ROOT": str(project.root),
            "CONVEYOR_ENV": environment.name,
            "CONVEYOR_RESULT_FILE": str(result_file),
            "CONVEYOR_SCRIPT_ARGS": json.dumps(list(args)),
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.compute.runner"],
            cwd=project.root,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(process.stdout, out), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, err), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        code = process.wait()
        for pump in pumps:
            pump.join()
        if code != 0 or not result_file.exists():
            raise CheckFailed(
                f"{script.name} failed in environment {environment.name!r} (exit status {code}); "
                "nothing was registered",
                hint="The script's own traceback is above.",
            )
        data = json.loads(result_file.read_text())
    return TrainingResult(environment.name, data["run_id"], data["registered"])


class LocalCompute:
    """`compute = "local"`: the script runs in a process on this machine; `ctx.spark()` is Spark in local mode."""

    def __init__(self, setting: str = "local") -> None:
        self.setting = setting

    def train(self, environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
        return run_training_process(environment, args, out, err)

    def spark_session(self, environment: Environment) -> SparkSession:
        from conveyor.compute.spark import SparkLocal

        return SparkLocal().spark_session(environment)
