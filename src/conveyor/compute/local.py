"""`conveyor train`: run the project's training script in a child process and report what it registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from conveyor.config import Environment
from conveyor.errors import CheckFailed, ConfigError
from conveyor.secrets import redaction


@dataclass
class TrainingResult:
    """What a training run produced."""

    environment: str
    run_id: str
    registered: list[dict]


def _pump(stream: IO[str], write: Callable[[str], None]) -> None:
    for line in iter(stream.readline, ""):
        write(redaction.redact(line))


def _preload_secrets(environment: Environment) -> None:
    """Read every secret the store holds so the parent can mask the child's output too."""
    public = environment.public_secret_keys()
    for key in environment.secrets.names():
        if key in public:
            continue
        try:
            environment.secrets.get(key)
        except Exception:
            continue


def train(
    environment: Environment,
    args: list[str] | None = None,
    out: Callable[[str], None] = sys.stdout.write,
    err: Callable[[str], None] = sys.stderr.write,
) -> TrainingResult:
    """Run the project's `train.py` against `environment`; raise `CheckFailed` if it fails (nothing registered)."""
    project = environment.project
    script = project.root / project.config.project.train
    if not script.is_file():
        raise ConfigError(
            f"training script {script} does not exist",
            hint=f"Create it, or point [project].train in {project.file} at your script.",
        )
    if environment.compute == "databricks" or environment.compute.startswith("databricks://"):
        raise ConfigError(
            f"environment {environment.name!r} asks for compute 'databricks', which conveyor cannot run yet",
            hint="Use compute = 'local', 'spark', 'spark://HOST:PORT' or 'sc://HOST' for this environment.",
        )
    # Fail early, in this process, on a bad store, a missing secret or an unreadable lake setting.
    _preload_secrets(environment)
    _ = environment.lake_url, environment.state, environment.created_by, environment.registry_uri
    with tempfile.TemporaryDirectory(prefix="conveyor-run-") as tmp:
        result_file = Path(tmp) / "result.json"
        child_env = {
            **os.environ,
            "CONVEYOR_PROJECT_ROOT": str(project.root),
            "CONVEYOR_ENV": environment.name,
            "CONVEYOR_RESULT_FILE": str(result_file),
            "CONVEYOR_SCRIPT_ARGS": json.dumps(args or []),
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
