"""One training run on Databricks: submitted with the Jobs API (`runs/submit`, a Python wheel task), watched until
it ends (its state changes and log lines passed on as they come), and judged."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.compute.databricks.bundle import TASK_ENTRY_POINT
from conveyor.errors import CheckFailed
from conveyor.secrets.redaction import redact

if TYPE_CHECKING:
    from databricks.sdk.service.jobs import Run

    from conveyor.compute.base import Writer
    from conveyor.compute.databricks.workspace import Workspace

TASK_KEY = "train"
ENVIRONMENT_KEY = "conveyor"
SERVERLESS_ENVIRONMENT_VERSION = "2"
ENDED = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
TAIL_LINES = 25


@dataclass
class RunEnd:
    """How a run ended: its id, page, result state and, for a failure, what the task said."""

    run_id: int
    page_url: str | None
    result_state: str | None
    state_message: str
    error: str | None = None
    log_tail: str = ""


def task_spec(workspace: Workspace, wheel: str, parameters: list[str]) -> dict[str, Any]:
    """The `runs/submit` body's task and environments: the wheel's entry point on the configured cluster."""
    section = workspace.section
    task: dict[str, Any] = {
        "task_key": TASK_KEY,
        "python_wheel_task": {"package_name": "conveyor", "entry_point": TASK_ENTRY_POINT, "parameters": parameters},
    }
    spec: dict[str, Any] = {"tasks": [task]}
    if section.serverless:
        task["environment_key"] = ENVIRONMENT_KEY
        spec["environments"] = [
            {
                "environment_key": ENVIRONMENT_KEY,
                "spec": {"environment_version": SERVERLESS_ENVIRONMENT_VERSION, "dependencies": [wheel]},
            }
        ]
        return spec
    task["libraries"] = [{"whl": wheel}]
    if section.cluster_id:
        task["existing_cluster_id"] = section.cluster_id
    else:
        task["new_cluster"] = section.job_cluster
    return spec


def submit(workspace: Workspace, run_name: str, spec: dict[str, Any], token: str) -> int:
    """Submit a one-time run; its id."""
    from databricks.sdk.service.jobs import JobEnvironment, SubmitTask

    tasks = [SubmitTask.from_dict(task) for task in spec["tasks"]]
    environments = [JobEnvironment.from_dict(env) for env in spec.get("environments", [])] or None
    with workspace.errors("submit the training run"):
        waiter = workspace.client.jobs.submit(
            run_name=run_name,
            tasks=tasks,
            environments=environments,
            timeout_seconds=workspace.section.timeout_seconds(),
            idempotency_token=token,
        )
    response: Any = waiter.response
    run_id = getattr(response, "run_id", None)
    if run_id is None:
        raise CheckFailed("Databricks accepted the run but returned no run id", hint="Retry; check the workspace.")
    return int(run_id)


class LogFollower:
    """Passes on the whole lines of a task's log (`runs/get-output` returns its last 5 MB) not passed on yet."""

    def __init__(self, out: Writer) -> None:
        self.out = out
        self.seen = ""

    def update(self, logs: str | None, final: bool = False) -> bool:
        """Write the complete lines new in `logs` (the last partial one too when `final`); True if any."""
        if not logs:
            return False
        if final and not logs.endswith("\n"):
            logs += "\n"
        if logs.startswith(self.seen):
            new = logs[len(self.seen) :]
        else:  # the window moved on: continue after the last text already shown
            anchor = self.seen[-200:]
            at = logs.rfind(anchor) if anchor else -1
            new = logs[at + len(anchor) :] if at >= 0 else logs
        complete = new[: new.rfind("\n") + 1]
        if not complete:
            return False
        for line in complete.splitlines(keepends=True):
            self.out(redact(line))
        self.seen = logs[: len(logs) - len(new)] + complete
        return True


def watch(workspace: Workspace, run_id: int, out: Writer, err: Writer) -> RunEnd:
    """Follow a run until it ends: state changes on `err`, the task's log lines on `out`. Ctrl-C cancels it."""
    follower = LogFollower(out)
    last_state = ""
    delay = 0.5
    try:
        while True:
            with workspace.errors(f"follow run {run_id}"):
                run = workspace.client.jobs.get_run(run_id)
            state = _state(run)
            changed = state != last_state
            if changed:
                err(f"databricks run {run_id}: {state}" + (f" ({run.run_page_url})" if not last_state else "") + "\n")
                last_state = state
            task_run = _task_run_id(run)
            logs, error = _output(workspace, task_run) if task_run else (None, None)
            fresh = follower.update(logs)
            life = run.state.life_cycle_state.value if run.state and run.state.life_cycle_state else ""
            if life in ENDED:
                follower.update(logs, final=True)
                return _end(run, error, logs)
            delay = 0.5 if changed or fresh else min(delay * 2, 5.0)
            time.sleep(delay)
    except KeyboardInterrupt:
        err(f"cancelling databricks run {run_id}\n")
        with workspace.errors(f"cancel run {run_id}"):
            workspace.client.jobs.cancel_run(run_id)
        raise


def _state(run: Run) -> str:
    state = run.state
    if state is None or state.life_cycle_state is None:
        return "UNKNOWN"
    text = state.life_cycle_state.value
    if state.result_state is not None:
        text += f" {state.result_state.value}"
    return text


def _task_run_id(run: Run) -> int | None:
    for task in run.tasks or []:
        if task.task_key == TASK_KEY and task.run_id is not None:
            return int(task.run_id)
    return None


def _output(workspace: Workspace, task_run_id: int) -> tuple[str | None, str | None]:
    """The task's log so far and its error, if any (absent while the task has not started)."""
    from databricks.sdk.errors import BadRequest, InvalidParameterValue, NotFound

    try:
        with workspace.errors(f"read the output of task run {task_run_id}"):
            try:
                output = workspace.client.jobs.get_run_output(task_run_id)
            except (BadRequest, InvalidParameterValue, NotFound):
                return None, None
    except CheckFailed:
        return None, None
    error = output.error
    if output.error_trace:
        error = f"{error or ''}\n{output.error_trace}".strip()
    return output.logs, error


def _end(run: Run, error: str | None, logs: str | None) -> RunEnd:
    state = run.state
    result = state.result_state.value if state and state.result_state else None
    message = (state.state_message if state else None) or ""
    tail_source = logs or ""
    tail = "\n".join(tail_source.rstrip("\n").splitlines()[-TAIL_LINES:])
    return RunEnd(int(run.run_id or 0), run.run_page_url, result, message, error, redact(tail))


def judge(end: RunEnd, timeout: str) -> None:
    """Raise `CheckFailed` (exit 1) for a run that did not succeed, with its error and the tail of its log."""
    if end.result_state == "SUCCESS":
        return
    where = f" ({end.page_url})" if end.page_url else ""
    if end.result_state == "CANCELED":
        raise CheckFailed(
            f"databricks run {end.run_id} was cancelled{where}: {redact(end.state_message) or 'no reason given'}; "
            "nothing was registered",
            hint="Run `conveyor train` again when the cluster is free; ask who cancelled it if that was not you.",
        )
    if end.result_state == "TIMEDOUT":
        raise CheckFailed(
            f"databricks run {end.run_id} took longer than its timeout of {timeout}{where}; nothing was registered",
            hint="Raise `timeout` in the environment's [databricks] section, or use a larger cluster.",
        )
    lines = [f"databricks run {end.run_id} failed{where}: {redact(end.state_message) or end.result_state}"]
    if end.error:
        lines.append(redact(end.error.strip()))
    if end.log_tail:
        lines += ["last lines of its log:", end.log_tail]
    raise CheckFailed(
        "\n".join(lines) + "\nnothing was registered",
        hint="Fix the script (its traceback is above), or the cluster if it failed to start, and train again.",
    )
