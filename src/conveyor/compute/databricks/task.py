"""The Python wheel task of a Databricks run (`conveyor-databricks-task`): the same runner, on the cluster.

It unpacks the project archive, runs the training script against the environment with a throwaway MLflow store,
and writes what the script logged and asked to register as `outcome.tar.gz` into the run's folder; `conveyor
train` fetches that and registers in the environment's registry. Paths are the cluster's view of the workspace
files (`/Volumes/...`, `/Workspace/...`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from conveyor.compute.engines import compute_for
from conveyor.compute.outcome import TrainingOutcome, pack
from conveyor.compute.runner import lineage_tags, run_script
from conveyor.config import load_project
from conveyor.errors import ConveyorError
from conveyor.secrets import redaction
from conveyor.training.context import TrainingContext, set_current_context

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
    import mlflow

    redaction.install()
    work = Path(tempfile.mkdtemp(prefix="conveyor-task-"))
    root = work / "project"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")
    project = load_project(root)
    environment = project.environment(env)
    script = root / project.config.project.train
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    with mlflow.start_run(run_name=f"train-{env}") as run:
        compute = compute_for(environment)
        ctx = TrainingContext(environment, work / "output", run.info.run_id, lambda: compute.spark_session(environment))
        ctx.output_dir.mkdir()
        set_current_context(ctx)
        if not run_script(script, root, args):
            mlflow.end_run("FAILED")
            return 1
        ctx.stop_spark()
        data = mlflow.get_run(run.info.run_id).data
        outcome = TrainingOutcome(dict(data.params), dict(data.metrics), lineage_tags(ctx))
    outcome.write(work / "outcome", ctx.registrations)
    out.mkdir(parents=True, exist_ok=True)
    pack(work / "outcome", out / OUTCOME_ARCHIVE)
    names = ", ".join(model.name for model in outcome.models) or "no model"
    print(f"conveyor: {script.name} finished; outcome ({names}) written to {out / OUTCOME_ARCHIVE}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    try:
        return train_here(Path(options.project), options.env, Path(options.out), json.loads(options.args))
    except ConveyorError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
