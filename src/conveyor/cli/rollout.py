"""`conveyor rollout status|watch`: a running rollout's candidate beside the live release, and its guard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.options import JsonOption, KeyOption, ProjectOption
from conveyor.cli.output import emit_json, say, stdout
from conveyor.config import duration_seconds, load_project

if TYPE_CHECKING:
    from conveyor.release import RolloutStatus, VersionFigures

app = typer.Typer(
    help="A running rollout (canary or shadow): its figures beside the live release's, and a watcher that aborts "
    "it.\n\nStart one with `conveyor release promote N --to STAGE --canary 10` (or `--shadow`); the watcher signs "
    "the abort when a rule of `[release.STAGE.rollout]` breaks.",
    no_args_is_help=True,
)
StageArgument = Annotated[str, typer.Argument(help="Stage name, a [release.STAGE] of conveyor.toml (prod...).")]


def _duration(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return duration_seconds(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration such as 30s, 5m or 1h", param_hint=option) from None


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.4g}{unit}"


def _row(version: VersionFigures) -> list[str]:
    rate = version.error_rate
    psi = max((d.get("psi", 0.0) for d in version.drift.values()), default=None)
    shadow = ", ".join(f"{k} {v}" for k, v in sorted(version.shadow.items())) or "-"
    return [
        version.role,
        str(version.release or "-"),
        version.package.removeprefix("sha256:")[:12],
        str(version.requests),
        str(version.errors),
        "-" if rate is None else f"{rate:.2%}",
        _number(version.p50_ms),
        _number(version.p99_ms),
        _number(psi),
        shadow,
    ]


def _print(status: RolloutStatus) -> None:
    from rich.table import Table

    share = "shadow" if status.mode == "shadow" else f"canary at {status.weight}%"
    waiting = f"; waiting for approval of {status.pending}" if status.pending else ""
    say(
        f"{status.stage}: release {status.release} rolls out as a {share} beside release {status.live} "
        f"(last {status.window_seconds} s){waiting}"
    )
    table = Table("role", "release", "package", "requests", "errors", "error rate", "p50 ms", "p99 ms", "psi", "shadow")
    for version in status.versions:
        table.add_row(*_row(version))
    if not status.versions:
        say("no request went through the split yet")
    else:
        stdout.print(table)
    for check in status.checks:
        mark = {True: "holds", False: "[bold red]broken[/]", None: "not known yet"}[check.holds]
        say(f"  rule {check.rule}: {_number(check.value)} {mark}")
    if status.checks and not status.enough:
        say(f"  rules count from {status.min_requests} requests of the candidate in the window")


@app.command("status")
def status(
    stage: StageArgument,
    window: Annotated[
        str | None, typer.Option("--window", help="How far back: 30s, 5m, 1h (default: the rollout rules' window).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """The stage's running rollout: requests, errors, p50/p99 latency, drift and shadow outcomes of the
    candidate beside the live release over the window, and whether each recorded rule holds."""
    from conveyor.release import rollout_status

    found = rollout_status(load_project(project), stage, window_seconds=_duration(window, "--window"))
    if as_json:
        emit_json(found.to_dict())
    else:
        _print(found)


@app.command("watch")
def watch(
    stage: StageArgument,
    interval: Annotated[str, typer.Option("--interval", help="Time between checks (e.g. 5s).")] = "5s",
    duration: Annotated[
        str | None, typer.Option("--for", help="Stop watching after this long (e.g. 10m; default: until it ends).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit (a CI step).")] = False,
    key: KeyOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Guard the stage's rollout: check its recorded `[release.STAGE.rollout]` rules every interval, and when one
    breaks (with at least `min_requests` to the candidate), abort the rollout as an event signed by your key (a
    `[trust] watchers` principal), naming the rule and the figures. Exit 1 when it aborted, 0 otherwise."""
    from conveyor.release import watch_rollout

    every = _duration(interval, "--interval") or 5
    outcome = watch_rollout(
        load_project(project),
        stage,
        key=key,
        interval=every,
        duration=_duration(duration, "--for"),
        once=once,
        report=None if as_json else _print,
    )
    if as_json:
        emit_json(outcome.to_dict())
    elif outcome.ended == "aborted":
        say(f"[bold red]aborted[/] release {outcome.release}'s rollout in {stage}: rule {outcome.rule} broke")
    elif outcome.ended == "over":
        say(f"release {outcome.release}'s rollout in {stage} ended")
    else:
        say(f"release {outcome.release}'s rollout in {stage} keeps its rules ({outcome.checks} checks)")
    if outcome.ended == "aborted":
        raise typer.Exit(1)
