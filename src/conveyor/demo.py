"""`conveyor demo`: the main job end to end on embedded defaults, in a new project, narrated step by step."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from conveyor.errors import ConveyorError


@dataclass
class DemoReport:
    """What the demo did and where things are."""

    root: Path
    project: Path
    steps: list[tuple[str, float]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


class DemoRun:
    """Runs named steps in order, each under a spinner, recording its duration."""

    def __init__(self, console: Console, report: DemoReport, log: list[str]) -> None:
        self.console = console
        self.report = report
        self.log = log

    def step(self, title: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        with self.console.status(f"[bold]{title}[/] ..."):
            try:
                value = action()
            except ConveyorError:
                self.console.print(f"[red]✗[/] {title}")
                if self.log:
                    self.console.print("".join(self.log), markup=False, highlight=False)
                raise
        elapsed = time.perf_counter() - started
        self.report.steps.append((title, elapsed))
        self.console.print(f"[green]✓[/] {title} [dim]({elapsed:.1f}s)[/]")
        return value


def run_demo(console: Console, directory: Path | None = None, rows: int = 5000) -> DemoReport:
    """init → secrets → train in dev → list the model, then the same code in stage, with each step reported."""
    from conveyor.compute import train
    from conveyor.config import load_project
    from conveyor.examples.scaffold import init_project
    from conveyor.registry import ModelRegistry

    root = (directory or Path(tempfile.mkdtemp(prefix="conveyor-demo-"))).resolve()
    report = DemoReport(root=root, project=root / "census")
    log: list[str] = []
    run = DemoRun(console, report, log)

    made = run.step(
        "init: census project, private secret files and a data lake per environment",
        lambda: init_project(report.project, secrets_dir=root / "secrets", lakes_dir=root / "lakes", rows=rows),
    )
    report.facts["secrets"] = str(made.secrets_dir)
    report.facts["lakes"] = {env: str(path) for env, path in made.lakes.items()}
    project = load_project(report.project)
    dev = project.environment("dev")
    run.step("secrets: dev store holds what the project needs", lambda: _check_secrets(dev))
    trained = run.step(
        "train in dev: train.py against dev's lake, registered in dev's registry",
        lambda: train(dev, out=log.append, err=log.append),
    )
    version = trained.registered[0]
    report.facts["dev_model"] = version
    registry = ModelRegistry(dev)
    listed = run.step("models: dev's registry lists the new version", lambda: registry.versions(version["name"]))
    report.facts["dev_versions"] = [v.version for v in listed]
    stage = project.environment("stage")
    staged = run.step(
        "train in stage: same code, stage's lake and registry", lambda: train(stage, out=log.append, err=log.append)
    )
    report.facts["stage_model"] = staged.registered[0]
    report.facts["dev_versions_after_stage"] = [v.version for v in registry.versions(version["name"])]
    report.facts["training_output"] = "".join(log)
    return report


def _check_secrets(environment) -> list[str]:
    needed = environment.required_secrets()
    present = set(environment.secrets.names())
    missing = [k for k in needed if k not in present]
    if missing:
        raise ConveyorError(f"demo secrets are missing: {', '.join(missing)}")
    return needed
