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


def run_demo(
    console: Console, directory: Path | None = None, rows: int = 5000, keep_running: bool = False
) -> DemoReport:
    """init → train in dev and stage → build → test in the image → gates → QA → approved prod → score → history."""
    from conveyor.compute import train
    from conveyor.config import load_project
    from conveyor.examples.scaffold import init_project
    from conveyor.registry import ModelRegistry

    root = (directory or Path(tempfile.mkdtemp(prefix="conveyor-demo-"))).resolve()
    report = DemoReport(root=root, project=root / "census")
    log: list[str] = []
    run = DemoRun(console, report, log)

    ports = _free_ports(("qa", "prod"))
    report.facts["ports"] = ports
    made = run.step(
        "init: census project, private secret files and a data lake per environment",
        lambda: init_project(
            report.project, secrets_dir=root / "secrets", lakes_dir=root / "lakes", rows=rows, release_ports=ports
        ),
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
    staged_version = staged.registered[0]
    report.facts["stage_model"] = staged_version
    report.facts["dev_versions_after_stage"] = [v.version for v in registry.versions(version["name"])]
    log.clear()
    _ship(run, project, stage, staged_version, report, log, keep_running)
    return report


def _ship(run: DemoRun, project, stage, version: dict, report: DemoReport, log: list[str], keep_running: bool) -> None:
    """Build, test and gate the stage model, release it to QA, get prod approved, score against prod."""
    from conveyor.package import build
    from conveyor.release import PolicyRefused, Releases
    from conveyor.testing import run_gates, run_tests

    spec = f"{version['name']}/{version['version']}"
    record = run.step(
        f"build: package + OCI image of {spec} from stage's registry",
        lambda: build(project, stage, model_spec=spec, progress=log.append),
    )
    report.facts["build"] = {
        "digest": record.digest,
        "path": str(record.path),
        "image": record.image.to_json() if record.image else None,
    }
    tests = run.step(
        "test: the project's tests against the built package", lambda: run_tests(record, progress=log.append)
    )
    report.facts["tests"] = tests.to_record()
    if not tests.ok:
        raise ConveyorError(f"the demo's tests failed: see {tests.junit}")
    gates = run.step(
        "gate: quality gates on stage's sealed evaluation set", lambda: run_gates(record, progress=log.append)
    )
    report.facts["gates"] = gates.to_dict()
    if not gates.ok:
        raise ConveyorError("the demo's quality gates failed")
    desk = Releases(project)
    try:
        qa = run.step(
            "release to qa: verified, deployed at once (no approval needed)",
            lambda: desk.create(record.path, "qa", actor="carol"),
        )
        prod = run.step(
            "promote to prod: requested by alice, waits for approval",
            lambda: desk.promote(qa.id, "prod", actor="alice"),
        )

        def own_approval() -> str:
            try:
                desk.approve(prod.id, actor="alice")
            except PolicyRefused as refused:
                return refused.message
            raise ConveyorError("the requester's own approval was accepted; the policy is broken")

        report.facts["refused"] = run.step("approve as alice (the requester): refused", own_approval)
        approved = run.step(
            "approve as bob: prod deploys the exact tested image",
            lambda: desk.approve(prod.id, actor="bob", comment="gates green"),
        )
        report.facts["releases"] = {"qa": qa.to_dict(), "prod": approved.to_dict()}
        answer = run.step("score: a consumer calls prod's /score", lambda: _score(report.facts["ports"]["prod"]))
        report.facts["prod_answer"] = answer
        report.facts["history"] = [h.__dict__ for h in desk.history("prod")]
        report.facts["audit"] = run.step("audit: the hash chain of the ledger holds", lambda: _audit(desk))
    finally:
        if not keep_running:
            _stop_stages(project, record.path)


def _score(port: int) -> dict:
    import httpx

    request = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}
    response = httpx.post(f"http://127.0.0.1:{port}/score", json=request, timeout=30)
    response.raise_for_status()
    return {"request": request, "response": response.json()}


def _audit(desk) -> dict:
    chain = desk.ledger.verify_audit()
    if not chain.ok:
        raise ConveyorError(f"audit chain broken at entry {chain.first_bad}: {chain.problem}")
    return {"entries": chain.entries, "head": chain.head}


def _free_ports(stages: tuple[str, ...]) -> dict[str, int]:
    """A free loopback port for each stage's local:// target."""
    import socket

    ports = {}
    for stage in stages:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[stage] = sock.getsockname()[1]
    return ports


def _stop_stages(project, build_path: Path) -> None:
    """Stop the demo's QA and prod servers (containers or processes)."""
    from conveyor.package.record import BuildRecord
    from conveyor.release.targets import DeployContext, LocalTarget

    build = BuildRecord.load(Path(build_path))
    for stage, config in project.config.release.items():
        if config.target.startswith("local://"):
            context = DeployContext(project.name, project.state_dir, stage, 0, build, {})
            LocalTarget(config.target).stop(context)


def _check_secrets(environment) -> list[str]:
    needed = environment.required_secrets()
    present = set(environment.secrets.names())
    missing = [k for k in needed if k not in present]
    if missing:
        raise ConveyorError(f"demo secrets are missing: {', '.join(missing)}")
    return needed
