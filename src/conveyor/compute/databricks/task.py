"""The Python wheel task of a Databricks run (`conveyor-databricks-task`): `conveyor train`, on the cluster.

It unpacks the project archive and runs the training script against the environment exactly as `conveyor train`
does on a laptop (a confined child answered by a broker that holds the store and the lake), but instead of
registering it writes the outcome (what the script logged, the lineage, the model files) as `outcome.tar.gz`
into the run's folder; `conveyor train` fetches that and registers in the environment's registry. Paths are the
cluster's view of the workspace files (`/Volumes/...`, `/Workspace/...`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from conveyor.compute.child import confined_run
from conveyor.compute.outcome import TrainingOutcome, pack
from conveyor.config import load_project
from conveyor.errors import ConveyorError
from conveyor.secrets import redaction

OUTCOME_ARCHIVE = "outcome.tar.gz"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="conveyor-databricks-task", description=__doc__)
    parser.add_argument("--project", required=True, help="the project archive (a path on the cluster)")
    parser.add_argument("--env", required=True, help="the environment to train in")
    parser.add_argument("--out", required=True, help="the run's folder, where outcome.tar.gz is written")
    parser.add_argument("--args", default="[]", help="the training script's arguments, as a JSON list")
    return parser.parse_args(argv)


def train_here(archive: Path, env: str, out: Path, args: list[str]) -> int:
    """Run the project's training script here; 0 with the outcome written, 1 when the script failed."""
    redaction.install()
    work = Path(tempfile.mkdtemp(prefix="conveyor-task-"))
    root = work / "project"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")
    environment = load_project(root).environment(env)
    with confined_run(environment, args, sys.stdout.write, sys.stderr.write) as run:
        if run.code != 0:
            sys.stderr.write(f"{Path(run.settings.script).name} failed (exit status {run.code}); nothing to register\n")
            return 1
        outcome = TrainingOutcome.of(run)
        outcome.write(work / "outcome", run.record.registrations)
    out.mkdir(parents=True, exist_ok=True)
    pack(work / "outcome", out / OUTCOME_ARCHIVE)
    names = ", ".join(model.name for model in outcome.models) or "no model"
    print(f"conveyor: {outcome.script} finished; outcome ({names}) written to {out / OUTCOME_ARCHIVE}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    try:
        return train_here(Path(options.project), options.env, Path(options.out), json.loads(options.args))
    except ConveyorError as error:
        sys.stderr.write(f"error: {redaction.redact(str(error))}\n")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
