"""Running a pipeline on this machine: the same commands CI runs, one process each, with their JSON passed on."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.pipelines.definitions import Pipeline, Step, find_pipeline
from conveyor.secrets.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[A-Za-z0-9_\-]+)*)\}")


@dataclass
class PipelineRun:
    """The state of one pipeline run, kept in results/pipeline-NAME.json so steps can run one by one in CI."""

    pipeline: str
    parameters: dict[str, str]
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"pipeline": self.pipeline, "parameters": self.parameters, "outputs": self.outputs, "steps": self.steps}


def state_file(root: Path, pipeline: Pipeline) -> Path:
    return root / "results" / f"pipeline-{pipeline.name}.json"


def lookup(path: str, parameters: dict[str, str], outputs: dict[str, Any]) -> str:
    """`env` → a parameter; `build.package.digest` → that key of the build step's JSON."""
    head, *rest = path.split(".")
    if not rest:
        if head in parameters:
            return parameters[head]
        raise ConveyorError(f"pipeline parameter {head!r} is not set", hint=f"Pass --param {head}=VALUE.")
    if head not in outputs:
        raise ConveyorError(
            f"step {head!r} has not run yet in this pipeline run (needed for {{{path}}})",
            hint="Run the pipeline from its first step, or that step first with --step.",
        )
    value: Any = outputs[head]
    try:
        for key in rest:
            value = value[int(key)] if isinstance(value, list) else value[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ConveyorError(
            f"step {head!r} gave no {{{path}}} in its JSON output",
            hint=f"Check what {head!r} printed (kept under outputs in results/pipeline-*.json), e.g. that train "
            "registered a model.",
        ) from None
    return str(value)


def command_of(step: Step, parameters: dict[str, str], outputs: dict[str, Any]) -> list[str]:
    args = [PLACEHOLDER.sub(lambda m: lookup(m.group(1), parameters, outputs), a) for a in step.args]
    return [*args, "--json"] if step.json else args


def _stderr(text: str) -> None:
    sys.stderr.write(text)


def run_pipeline(
    root: Path,
    pipeline: Pipeline | str,
    parameters: dict[str, str],
    only: str | None = None,
    announce: Callable[[str], None] = print,
    write: Callable[[str], None] = _stderr,
) -> PipelineRun:
    """Run every step (or only `only`, continuing a run kept in results/), stopping at the first failure.

    This is `conveyor pipeline run`: each step is a conveyor command in its own process, as CI runs it.
    """
    if isinstance(pipeline, str):
        from conveyor.config import load_project

        pipeline = find_pipeline(pipeline, load_project(root))
    if only is not None and only not in [s.name for s in pipeline.steps]:
        raise ConveyorError(
            f"pipeline {pipeline.name!r} has no step {only!r}",
            hint=f"Steps: {', '.join(s.name for s in pipeline.steps)}.",
        )
    path = state_file(root, pipeline)
    run = PipelineRun(pipeline.name, parameters)
    if only is not None:
        if path.exists():
            saved = json.loads(path.read_text())
            run.outputs = saved.get("outputs", {})
            run.steps = saved.get("steps", [])
            run.parameters = {**saved.get("parameters", {}), **parameters}
        steps = [pipeline.step(only)]
    else:
        steps = list(pipeline.steps)
    for step in steps:
        argv = command_of(step, run.parameters, run.outputs)
        announce(f"[{step.name}] {step.title}: conveyor {' '.join(argv)}")
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "conveyor.cli.main", *argv],
            cwd=root,
            stdout=subprocess.PIPE if step.json else None,
            text=True,
        )
        elapsed = round(time.perf_counter() - started, 1)
        run.steps = [s for s in run.steps if s["name"] != step.name]
        run.steps.append(
            {"name": step.name, "command": ["conveyor", *argv], "exit_code": done.returncode, "seconds": elapsed}
        )
        if step.json and done.returncode == 0:
            run.outputs[step.name] = json.loads(done.stdout)
        elif step.json and done.stdout:
            write(redact(done.stdout))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run.to_dict(), indent=2))
        if done.returncode != 0:
            error = CheckFailed(
                f"pipeline {pipeline.name!r} stopped: step {step.name!r} exited {done.returncode}",
                hint=f"Its output is above; the run's state is in {path}.",
            )
            error.exit_code = done.returncode
            raise error
        if step.publishes:
            refuse_secrets_in_published(root, step, run)
        announce(f"[{step.name}] done in {elapsed}s")
    return run


def refuse_secrets_in_published(root: Path, step: Step, run: PipelineRun) -> None:
    """Scan what `step` publishes for every value of the run's environment store and the gate store."""
    from conveyor.config import load_project
    from conveyor.secrets.scan import refuse_published

    project = load_project(root)
    stores = []
    with contextlib.suppress(ConveyorError):
        stores.append(project.environment(run.parameters.get("env")).secrets)
    with contextlib.suppress(ConveyorError):
        stores.append(project.gates.secrets)
    paths = [
        root / PLACEHOLDER.sub(lambda m: lookup(m.group(1), run.parameters, run.outputs), p) for p in step.publishes
    ]
    refuse_published(paths, f"what step {step.name!r} publishes", stores)
