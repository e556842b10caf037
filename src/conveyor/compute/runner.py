"""The process that runs a user's `train.py` with a training context (started by `conveyor train`).

It installs secret redaction first, opens an MLflow run in the environment's registry, runs the script as
`__main__`, and only if the script ends well registers the models it asked for, tagged with lineage.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from conveyor.compute.engines import compute_for
from conveyor.compute.lineage import git_commit
from conveyor.config import Project, load_project
from conveyor.errors import ConveyorError
from conveyor.registry.store import ModelRegistry, pinned_requirements
from conveyor.secrets import redaction
from conveyor.training.context import PendingRegistration, TrainingContext, set_current_context

RUNNER_FILES = (__file__, runpy.__file__, "<frozen runpy>")


def user_traceback(exc: BaseException) -> str:
    """The traceback from the user's script down, without conveyor's and runpy's frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in RUNNER_FILES]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def lineage_tags(ctx: TrainingContext) -> dict[str, str]:
    env = ctx.environment
    commit, dirty = git_commit(env.project.root)
    tags = {"state": env.state, "created_by": env.created_by, "environment": env.name}
    if commit:
        tags["git_commit"] = commit
        tags["git_dirty"] = str(dirty).lower()
    lake = ctx.__dict__.get("lake")  # only if the script touched the lake
    tags["data_digest"] = lake.data_digest() if lake is not None and lake.reads() else "none"
    if lake is not None:
        tags["data_files"] = ",".join(read.path for read in lake.reads())[:4000]
    return tags


def run_script(script: Path, root: Path, args: list[str]) -> bool:
    """Run the user's script as `__main__`; False, with the script's own traceback on stderr, when it fails."""
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(root))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            sys.stderr.write(f"{script.name} exited with status {exc.code}\n")
            return False
    except BaseException as exc:  # the user's error, shown as theirs
        sys.stderr.write(user_traceback(exc))
        return False
    return True


def version_tags(own: dict[str, str], lineage: dict[str, str], metrics: dict[str, float]) -> dict[str, str]:
    """A model version's tags: the script's own, the lineage, and `metric.NAME` for each logged metric."""
    return {**own, **lineage, **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()}}


def register_models(
    registry: ModelRegistry,
    project: Project,
    registrations: list[PendingRegistration],
    lineage: dict[str, str],
    metrics: dict[str, float],
) -> list[dict[str, Any]]:
    """Log each pending model as an MLflow pyfunc in the active run and register it, tagged; the versions made."""
    root = project.root
    code = [root / c for c in project.config.project.code if (root / c).exists()]
    registered = []
    for pending in registrations:
        model_uri = registry.log_pyfunc(pending.path, root / project.config.project.score, code, pinned_requirements())
        tags = version_tags(pending.tags, lineage, metrics)
        registered.append(registry.register(model_uri, pending.name, tags).to_dict())
    return registered


def main() -> int:
    redaction.install()
    root = Path(os.environ["CONVEYOR_PROJECT_ROOT"])
    result_file = Path(os.environ["CONVEYOR_RESULT_FILE"])
    project = load_project(root)
    environment = project.environment(os.environ["CONVEYOR_ENV"])
    registry = ModelRegistry(environment)

    import mlflow

    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    script = root / project.config.project.train
    output = Path(tempfile.mkdtemp(prefix="conveyor-train-"))
    with mlflow.start_run(experiment_id=registry.experiment_id(), run_name=f"train-{environment.name}") as run:
        compute = compute_for(environment)
        ctx = TrainingContext(environment, output, run.info.run_id, lambda: compute.spark_session(environment))
        set_current_context(ctx)
        mlflow.set_tags({"conveyor.environment": environment.name, "conveyor.script": script.name})
        if not run_script(script, root, json.loads(os.environ.get("CONVEYOR_SCRIPT_ARGS", "[]"))):
            mlflow.end_run("FAILED")
            return 1
        ctx.stop_spark()
        metrics = mlflow.get_run(run.info.run_id).data.metrics
        registered = register_models(registry, project, ctx.registrations, lineage_tags(ctx), metrics)
    result_file.write_text(json.dumps({"run_id": run.info.run_id, "registered": registered}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConveyorError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
