"""`conveyor demo`: the main job end to end on embedded defaults, in a new project, narrated step by step.

The demo plays four people, each with an SSH key made in the demo's folder: `ci` (the builder whose signed build,
test and gate attestations a release accepts), `alice` (who requests production), `bob` (who approves it) and
`mallory` (whose key is not in allowed_signers). Who acts is always whoever's key signs.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from conveyor.config import Environment, Project
    from conveyor.package.record import BuildRecord
    from conveyor.release import HistoryEntry, ReleaseView
    from conveyor.testing import GateReport, TestReport
    from conveyor.trust import SigningKey

T = TypeVar("T")
STAGES = ("qa", "prod")
PEOPLE = ("ci", "alice", "bob")  # in allowed_signers; `mallory` is not
OUTSIDER = "mallory"
BATCH_INPUT, BATCH_OUTPUT = "AdultCensusIncome.csv", "scored/AdultCensusIncome"
REQUEST = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}


@dataclass
class Trained:
    """A model version a training run registered."""

    name: str
    version: str
    tags: dict[str, str]


@dataclass
class Shipped:
    """The build, its tests and gates, and what the releases did with it."""

    digest: str
    path: str
    image_digest: str | None
    tests: dict[str, Any]
    gates: dict[str, Any]
    qa: dict[str, Any] = field(default_factory=dict)
    prod: dict[str, Any] = field(default_factory=dict)
    refused: str = ""
    outsider_refused: str = ""
    prod_answer: dict[str, Any] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    ledger_events: int = 0
    ledger_head: str = ""


@dataclass
class DemoReport:
    """What the demo did and where things are."""

    root: Path
    project: Path
    keys: Path
    ports: dict[str, int]
    steps: list[tuple[str, float]] = field(default_factory=list)
    secrets: str = ""
    lakes: dict[str, str] = field(default_factory=dict)
    dev_model: Trained | None = None
    stage_model: Trained | None = None
    dev_versions_after_stage: list[str] = field(default_factory=list)
    shipped: Shipped | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: str(value) if isinstance(value, Path) else value for key, value in data.items()}


class DemoRun:
    """Runs named steps in order, each under a spinner, recording its duration."""

    def __init__(self, console: Console, report: DemoReport, log: list[str]) -> None:
        self.console = console
        self.report = report
        self.log = log

    def step(self, title: str, action: Callable[[], T]) -> T:
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
    """init → keys → train in dev and stage → build → test in the image → gates → QA → approved prod → score."""
    from conveyor.config import load_project
    from conveyor.examples.scaffold import init_project

    root = (directory or Path(tempfile.mkdtemp(prefix="conveyor-demo-"))).resolve()
    report = DemoReport(root=root, project=root / "census", keys=root / "keys", ports=_free_ports(STAGES))
    log: list[str] = []
    run = DemoRun(console, report, log)

    made = run.step(
        "init: census project, private secret files, a data lake per environment, a sealed evaluation set",
        lambda: init_project(
            report.project,
            secrets_dir=root / "secrets",
            lakes_dir=root / "lakes",
            rows=rows,
            release_ports=report.ports,
        ),
    )
    report.secrets = str(made.secrets_dir)
    report.lakes = {env: str(path) for env, path in made.lakes.items()}
    keys = run.step(
        "keys: ci, alice and bob in allowed_signers (committed); mallory's key is not",
        lambda: _make_keys(report.project, report.keys),
    )
    project = load_project(report.project)
    run.step("secrets: dev's store and the gate store hold what the project needs", lambda: _check(project))
    dev, stage = project.environment("dev"), project.environment("stage")
    report.dev_model = run.step(
        "train in dev: train.py against dev's lake, registered in dev's registry", lambda: _train(dev, log)
    )
    report.stage_model = run.step("train in stage: same code, stage's lake and registry", lambda: _train(stage, log))
    report.dev_versions_after_stage = _versions(dev, report.dev_model.name)
    log.clear()
    report.shipped = _ship(run, project, stage, report.stage_model, keys, report.ports, log, keep_running)
    return report


def _check(project: Project) -> None:
    from conveyor.config import check_secrets

    check_secrets(project, "dev").require()
    check_secrets(project, "gates").require()


def _make_keys(project_root: Path, folder: Path) -> dict[str, SigningKey]:
    """A key per person; ci, alice and bob appended to the project's allowed_signers and committed."""
    from conveyor.trust import load_signing_key, make_key

    folder.mkdir(parents=True, exist_ok=True)
    keys: dict[str, SigningKey] = {}
    for person in (*PEOPLE, OUTSIDER):
        make_key(folder / person, person)
        keys[person] = load_signing_key(folder / person)
    signers = project_root / "allowed_signers"
    lines = [f"{person} {keys[person].public.openssh()}" for person in PEOPLE]
    signers.write_text(signers.read_text() + "\n".join(lines) + "\n")
    if (project_root / ".git").is_dir():
        for args in (["add", "allowed_signers"], ["commit", "-q", "-m", "Keys of ci, alice and bob"]):
            subprocess.run(
                ["git", "-c", "user.name=conveyor demo", "-c", "user.email=demo@localhost", *args],
                cwd=project_root,
                check=True,
                capture_output=True,
            )
    return keys


def _train(environment: Environment, log: list[str]) -> Trained:
    from conveyor.compute import train

    registered = train(environment, out=log.append, err=log.append).registered[0]
    return Trained(str(registered["name"]), str(registered["version"]), dict(registered["tags"]))


def _versions(environment: Environment, name: str) -> list[str]:
    from conveyor.registry import ModelRegistry

    return [v.version for v in ModelRegistry(environment).versions(name)]


def _ship(
    run: DemoRun,
    project: Project,
    stage: Environment,
    version: Trained,
    keys: dict[str, SigningKey],
    ports: dict[str, int],
    log: list[str],
    keep_running: bool,
) -> Shipped:
    """Build, test and gate the stage model as ci; release it to QA; alice requests prod, bob approves; score."""
    from conveyor.package import build

    spec = f"{version.name}/{version.version}"
    record: BuildRecord = run.step(
        f"build: package + OCI image of {spec} from stage's registry, provenance signed by ci",
        lambda: build(project, stage, model_spec=spec, progress=log.append, key=keys["ci"]),
    )
    tests, gates = _test_and_gate(run, record, keys["ci"], log)
    shipped = Shipped(
        digest=record.digest,
        path=str(record.path),
        image_digest=record.image.digest if record.image else None,
        tests=tests.to_record(),
        gates=gates.to_dict(),
    )
    try:
        _release(run, project, record, keys, ports, shipped)
    finally:
        if not keep_running:
            from conveyor.release import shut_down_stage

            for name in STAGES:
                shut_down_stage(project, name)
    return shipped


def _test_and_gate(run: DemoRun, record: BuildRecord, key: SigningKey, log: list[str]) -> tuple[TestReport, GateReport]:
    from conveyor.testing import run_gates, run_tests

    tests = run.step(
        "test: the project's tests inside the built image, the result signed by ci",
        lambda: run_tests(record, progress=log.append, key=key),
    )
    if not tests.ok:
        raise ConveyorError(f"the demo's tests failed: see {tests.junit}")
    gates = run.step(
        "gate: the sealed evaluation set, evaluated inside the image with the network off, signed by ci",
        lambda: run_gates(record, progress=log.append, key=key),
    )
    if not gates.ok:
        raise ConveyorError("the demo's quality gates failed")
    return tests, gates


def _release(
    run: DemoRun,
    project: Project,
    record: BuildRecord,
    keys: dict[str, SigningKey],
    ports: dict[str, int],
    shipped: Shipped,
) -> None:
    from conveyor.release import approve, create_release, history, promote, verify_ledger

    qa: ReleaseView = run.step(
        "release to qa: attestations verified, deployed at once (no approval needed)",
        lambda: create_release(project, str(record.path), "qa", key=keys["ci"]),
    )
    prod: ReleaseView = run.step(
        "promote to prod: requested by alice, pending under prod's recorded policy",
        lambda: promote(project, qa.id, "prod", key=keys["alice"]),
    )
    shipped.refused = run.step(
        "approve with alice's key (the requester): refused",
        lambda: _refusal(lambda: approve(project, prod.id, key=keys["alice"])),
    )
    shipped.outsider_refused = run.step(
        "approve with mallory's key (not in allowed_signers): refused",
        lambda: _refusal(lambda: approve(project, prod.id, key=keys[OUTSIDER])),
    )
    approved: ReleaseView = run.step(
        "approve with bob's key: prod deploys the exact tested image digest",
        lambda: approve(project, prod.id, key=keys["bob"], comment="gates green"),
    )
    shipped.qa, shipped.prod = qa.to_dict(), approved.to_dict()
    shipped.prod_answer = run.step("score: a consumer calls prod's /score", lambda: _score(ports["prod"]))
    shipped.batch = run.step(
        f"score-batch: the package prod runs scores prod's lake file {BATCH_INPUT} into Parquet",
        lambda: _score_lake(project, record),
    )
    entries: list[HistoryEntry] = history(project, "prod")
    shipped.history = [entry.to_dict() for entry in entries]
    chain = run.step("audit: every ledger event's signature and chain verified", lambda: verify_ledger(project))
    if not chain.ok:
        raise ConveyorError(f"the ledger does not verify at event {chain.first_bad}: {chain.problem}")
    shipped.ledger_events, shipped.ledger_head = chain.entries, chain.head


def _refusal(action: Callable[[], object]) -> str:
    """The message of the refusal `action` must meet; an action that goes through means the policy is broken."""
    try:
        action()
    except ConveyorError as refused:
        return refused.message
    raise ConveyorError("an approval that the policy forbids was accepted; the policy is broken")


def _score_lake(project: Project, record: BuildRecord) -> dict[str, Any]:
    from conveyor.batch import score_build

    result = score_build(project, record.path, project.environment("prod"), BATCH_INPUT, BATCH_OUTPUT, overwrite=True)
    return result.to_dict()


def _score(port: int) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"http://127.0.0.1:{port}/score", json=REQUEST, timeout=30)
    response.raise_for_status()
    return {"request": REQUEST, "response": response.json()}


def _free_ports(stages: tuple[str, ...]) -> dict[str, int]:
    """A free loopback port for each stage's local:// target."""
    import socket

    ports = {}
    for stage in stages:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[stage] = sock.getsockname()[1]
    return ports
