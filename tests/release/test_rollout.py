"""Rollouts on a `local://` stage: a candidate beside the live release, as a canary with a weight or as a shadow.

Every step is a signed ledger event (start, weight changes, completion, abort); the stage's forwarder splits the
requests one by one as the verified ledger holds the rollout; `rollout watch` aborts a candidate that breaks a
rule of `[release.STAGE.rollout]`, signed by a watcher's key, and history names the rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from release_support import Keys, build, free_port, run

from conveyor.config import load_project
from conveyor.release.api import shut_down_stage
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases
from conveyor.release.routes import Route, stats_path
from conveyor.release.targets.local import LocalTarget

pytestmark = [pytest.mark.services, pytest.mark.slow]

FLAKY_SCORE = """import json


def init():
    pass


def run(raw):
    if int(json.loads(raw).get("x", 0)) % 20 == 0:
        raise ValueError("one input in twenty fails")
    return {"label": "flaky"}
"""
HANGING_SCORE = """import time


def init():
    pass


def run(raw):
    time.sleep(30)
    return {"label": "hangs"}
"""
RULES = """
[release.live.rollout]
rules = ["error_rate <= 1%", "p99_ms <= 2000"]
min_requests = 50
window = "5m"
"""


@pytest.fixture
def make_stage(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[Releases, int]]]:
    """Releases of a project whose `live` stage (local://PORT, conveyor's server as a process) has rollout rules
    and erin as its watcher, with `policy` added to [release.live]."""
    monkeypatch.setenv("CONVEYOR_ENGINE", "process")
    monkeypatch.setenv("CONVEYOR_SERVE_WORKERS", "1")
    made: list[Releases] = []

    def make(policy: str = "") -> tuple[Releases, int]:
        port = free_port()
        project = load_project(make_project(local_port=port, live_policy=policy + RULES, watchers=("erin",)))
        made.append(Releases(project, Ledger.open(project)))
        return made[-1], port

    yield make
    for releases in made:
        shut_down_stage(releases.project, "live")


@pytest.fixture
def stage(make_stage: Callable[[str], tuple[Releases, int]]) -> tuple[Releases, int]:
    return make_stage("")


def label(client: httpx.Client, port: int, key: str | None = None, x: int = 1) -> tuple[int, str | None]:
    headers = {"x-conveyor-key": key} if key else {}
    response = client.post(f"http://127.0.0.1:{port}/score", json={"x": x}, headers=headers, timeout=60)
    return response.status_code, response.json().get("label") if response.status_code == 200 else None


def wait_for_stats(releases: Releases, port: int, requests: int, role: str = "candidate", field: str = "") -> None:
    """Until the forwarder's stats file counts `requests` for `role` (it writes a line a second); with `field`,
    that many shadow outcomes of that kind; role "" counts every role."""
    path = stats_path(LocalTarget(f"local://{port}").route_file(releases.project.state_dir, "live"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            last = json.loads(path.read_text().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            last = {"figures": []}
        counted = [
            f["shadow"].get(field, 0) if field else f["requests"] for f in last["figures"] if role in ("", f["role"])
        ]
        if sum(counted) >= requests:
            return
        time.sleep(0.2)
    raise AssertionError(f"the stats never counted {requests} {role} requests")


def test_a_canary_gets_its_share_sticky_by_key_then_completes(
    stage: tuple[Releases, int], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    releases, port = stage
    p = ["-p", str(releases.project.root)]
    live = releases.create(build(releases, "blue"), "live", keys.carol)
    assert live.status == "live", live.error
    candidate = releases.create(build(releases, "green"), "live", keys.carol, canary=10)
    assert candidate.status == "rolling_out", candidate.error
    assert candidate.rollout is not None and candidate.rollout.beside == live.id

    with httpx.Client() as client:
        answers = [label(client, port, key=f"caller-{n}") for n in range(10_000)]
        assert all(code == 200 for code, _ in answers)
        share = sum(1 for _, name in answers if name == "green") / len(answers)
        assert 0.08 <= share <= 0.12, share
        # one caller, one version: the same key always lands on the same side
        for n in range(50):
            first = label(client, port, key=f"caller-{n}")[1]
            assert all(label(client, port, key=f"caller-{n}")[1] == first for _ in range(5))
        headers = client.post(f"http://127.0.0.1:{port}/score", json={}, headers={"x-conveyor-key": "a"}).headers
        assert headers["x-conveyor-release"] in (str(live.id), str(candidate.id))

    wait_for_stats(releases, port, 10_000 + 50 * 6 + 1, role="")
    code, out, err = run(capsys, "rollout", "status", "live", "--json", *p)
    assert code == 0, err
    status = json.loads(out)
    roles = {v["role"]: v for v in status["versions"]}
    assert roles["candidate"]["release"] == candidate.id and roles["live"]["release"] == live.id
    assert roles["candidate"]["requests"] + roles["live"]["requests"] >= 10_000
    assert [c["rule"] for c in status["checks"]] == ["error_rate <= 1%", "p99_ms <= 2000"]
    assert all(c["holds"] for c in status["checks"]), status["checks"]

    # a new weight: a signed change, in effect at once in a stage without approvers
    code, out, err = run(
        capsys,
        "release",
        "rollout",
        str(candidate.id),
        "--weight",
        "50",
        "--key",
        str(keys.path("carol")),
        "--json",
        *p,
    )
    assert code == 0 and json.loads(out)["rollout"]["weight"] == 50, err
    assert Route.read(LocalTarget(f"local://{port}").route_file(releases.project.state_dir, "live")).split
    with httpx.Client() as client:
        half = [label(client, port)[1] for _ in range(1000)]
    assert 0.4 <= half.count("green") / 1000 <= 0.6

    code, out, err = run(
        capsys, "release", "rollout", str(candidate.id), "--complete", "--key", str(keys.path("carol")), "--json", *p
    )
    assert code == 0, err
    done = json.loads(out)
    assert done["status"] == "live" and done["rollout"]["outcome"] == "completed"
    assert [w["weight"] for w in done["rollout"]["weights"]] == [10, 50, 100]
    with httpx.Client() as client:
        assert {label(client, port, key=f"caller-{n}")[1] for n in range(50)} == {"green"}
    assert releases.show(live.id).status == "superseded"
    code, out, err = run(capsys, "history", "live", *p)
    assert code == 0 and "came in as a canary: 10%" in out and "50%" in out, out


def test_a_shadow_never_answers_and_never_delays_the_caller(stage: tuple[Releases, int], keys: Keys) -> None:
    releases, port = stage
    assert releases.create(build(releases, "blue"), "live", keys.carol).status == "live"
    with httpx.Client() as client:
        plain = [_timed(client, port) for _ in range(50)]
    shadow = releases.create(build(releases, "hangs", score=HANGING_SCORE), "live", keys.carol, shadow=True)
    assert shadow.status == "rolling_out", shadow.error
    with httpx.Client() as client:
        timed = [_timed(client, port) for _ in range(200)]
    assert {name for name, _ in timed} == {"blue"}  # the shadow's answer is never returned
    slowest = max(seconds for _, seconds in timed)
    assert slowest < 2.0, slowest  # a shadow that hangs 30 s delays no caller
    assert sorted(s for _, s in timed)[100] < 5 * sorted(s for _, s in plain)[25] + 0.05
    wait_for_stats(releases, port, 1, role="shadow", field="dropped")
    status = releases_status(releases)
    shadow_row = next(v for v in status["versions"] if v["role"] == "shadow")
    assert shadow_row["shadow"].get("dropped", 0) > 0  # at most 64 copies wait on a hung candidate
    assert _nice(releases, shadow.id) == 19  # a shadow's server takes CPU only when the live one leaves it
    # a shadow has no weight
    with pytest.raises(Exception, match="shadow"):
        releases.rollout(shadow.id, keys.carol, weight=20)
    aborted = releases.rollout(shadow.id, keys.carol, abort=True, reason="enough")
    assert aborted.status == "aborted"


def _nice(releases: Releases, release: int) -> int:
    """The nice value of the process serving `release` in the `live` stage. Where the kernel schedules sessions
    as groups (autogroup), a process's nice value orders it only within its session, so the session's own nice
    value must say the same, or the server would take as much CPU as the live one."""
    backend = json.loads((releases.project.state_dir / "release" / "local" / f"live-r{release}.backend").read_text())
    stat = Path(f"/proc/{backend['handle']}/stat").read_text()
    nice = int(stat.rsplit(")", 1)[1].split()[16])
    group = Path(f"/proc/{backend['handle']}/autogroup")
    if group.exists() and Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        assert int(group.read_text().split()[-1]) == nice, group.read_text()
    return nice


def test_a_completed_shadow_serves_at_normal_priority(stage: tuple[Releases, int], keys: Keys) -> None:
    releases, port = stage
    assert releases.create(build(releases, "blue"), "live", keys.carol).status == "live"
    shadow = releases.create(build(releases, "green"), "live", keys.carol, shadow=True)
    assert shadow.status == "rolling_out" and _nice(releases, shadow.id) == 19
    done = releases.rollout(shadow.id, keys.carol, complete=True)
    assert done.status == "live", done.error
    assert _nice(releases, shadow.id) == 0
    with httpx.Client() as client:
        assert {label(client, port)[1] for _ in range(20)} == {"green"}


def _timed(client: httpx.Client, port: int) -> tuple[str | None, float]:
    started = time.perf_counter()
    _, name = label(client, port)
    return name, time.perf_counter() - started


def releases_status(releases: Releases) -> dict[str, object]:
    from conveyor.release.api import rollout_status

    return rollout_status(releases.project, "live").to_dict()


def test_a_candidate_that_fails_is_rolled_back_by_the_watcher_naming_the_rule(
    stage: tuple[Releases, int], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    releases, port = stage
    p = ["-p", str(releases.project.root)]
    live = releases.create(build(releases, "blue"), "live", keys.carol)
    candidate = releases.create(build(releases, "flaky", score=FLAKY_SCORE), "live", keys.carol, canary=50)
    assert candidate.status == "rolling_out", candidate.error

    # too few requests yet: the rules do not count, the watcher aborts nothing
    code, out, err = run(capsys, "rollout", "watch", "live", "--once", "--key", str(keys.path("erin")), "--json", *p)
    assert code == 0 and json.loads(out)["ended"] == "healthy", err

    with httpx.Client() as client:
        codes = [label(client, port, x=n)[0] for n in range(1000)]
    assert codes.count(500) > 0 and codes.count(200) > 900
    wait_for_stats(releases, port, 400)

    # a key that is no watcher, requester or approver may not abort
    code, _, err = run(capsys, "rollout", "watch", "live", "--once", "--key", str(keys.path("bob")), *p)
    assert code == 1 and "bob may not abort" in err, err
    assert releases.show(candidate.id).status == "rolling_out"

    code, out, err = run(capsys, "rollout", "watch", "live", "--once", "--key", str(keys.path("erin")), "--json", *p)
    assert code == 1, err
    outcome = json.loads(out)
    assert outcome["ended"] == "aborted" and outcome["rule"] == "error_rate <= 1%"
    assert 0.02 < outcome["figures"]["error_rate"] < 0.09
    shown = releases.show(candidate.id)
    assert shown.status == "aborted" and shown.rollout is not None
    assert (shown.rollout.aborted_by, shown.rollout.abort_rule) == ("erin", "error_rate <= 1%")
    with httpx.Client() as client:
        assert {label(client, port, x=n)[1] for n in range(40)} == {"blue"}  # every request to the live again
    code, out, err = run(capsys, "history", "live", *p)
    assert code == 0 and f"release {candidate.id} as a canary" in out and "aborted by erin" in out, out
    assert "error_rate <= 1%" in out
    assert releases.show(live.id).status == "live"


def test_a_weight_change_waits_for_an_approver_and_bad_input_records_nothing(
    make_stage: Callable[[str], tuple[Releases, int]], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    releases, port = make_stage('approvers = ["alice", "bob"]\nmin_approvals = 1')
    p = ["-p", str(releases.project.root)]
    key = {name: ["--key", str(keys.path(name))] for name in ("alice", "bob", "carol", "outsider")}
    blue = build(releases, "blue")
    code, _, err = run(capsys, "release", "create", str(blue), "--to", "live", *key["carol"], "--canary", "10", *p)
    assert code == 2 and "nothing is live in live" in err, err
    first = releases.create(blue, "live", keys.carol)
    releases.approve(first.id, keys.alice)
    assert releases.show(first.id).status == "live"

    events = len(releases.ledger.verified().state.releases)
    green = build(releases, "green")
    for args, message in (
        (["--canary", "0"], "1-99"),
        (["--canary", "150"], "1-99"),
        (["--canary", "10", "--shadow"], "not both"),
    ):
        code, _, err = run(capsys, "release", "create", str(green), "--to", "live", *key["carol"], *args, *p)
        assert code == 2 and message in err, err
    assert len(releases.ledger.verified().state.releases) == events

    pending = releases.create(green, "live", keys.carol, canary=10)
    assert pending.status == "pending"
    code, _, err = run(
        capsys, "release", "create", str(build(releases, "red")), "--to", "live", *key["carol"], "--canary", "5", *p
    )
    assert code == 2 and "one rollout at a time" in err, err
    releases.approve(pending.id, keys.bob)
    assert releases.show(pending.id).status == "rolling_out"

    code, out, err = run(capsys, "release", "rollout", str(pending.id), "--weight", "40", *key["carol"], "--json", *p)
    assert code == 0, err
    asked = json.loads(out)["rollout"]
    assert asked["weight"] == 10 and asked["changes"][-1]["effective_at"] is None  # waits for an approver
    code, _, err = run(capsys, "release", "rollout", str(pending.id), "--weight", "101", *key["carol"], *p)
    assert code == 2 and "0-100" in err
    code, _, err = run(capsys, "release", "rollout", str(pending.id), "--weight", "60", *key["outsider"], *p)
    assert code == 1 and "allowed_signers" in err
    code, _, err = run(capsys, "approve", str(pending.id), *key["carol"], *p)
    assert code == 1 and "carol is not an approver" in err
    route_file = LocalTarget(f"local://{port}").route_file(releases.project.state_dir, "live")
    assert Route.read(route_file).split is not None and Route.read(route_file).split.weight == 10  # type: ignore[union-attr]
    code, out, err = run(capsys, "approve", str(pending.id), *key["alice"], "--json", *p)
    assert code == 0 and json.loads(out)["rollout"]["weight"] == 40, err
    assert Route.read(route_file).split.weight == 40  # type: ignore[union-attr]

    # the dashboard shows the rollout on the stage and the release pages
    stage_page, release_page = dashboard_pages(releases.project.root, ["/stages/live", f"/releases/{pending.id}"])
    assert "Rolling out: release" in stage_page and "40% of requests" in stage_page
    assert "10% from" in release_page and "40% from" in release_page and "approved by alice" in release_page

    # an edited route file cannot raise the weight: the forwarder refuses what the ledger does not hold
    taken = Route.read(route_file)
    assert taken.split is not None
    forged = Route(
        taken.port,
        taken.release,
        taken.digest,
        taken.serial + 1,
        type(taken.split)(**{**taken.split.__dict__, "weight": 100}),
    )
    forged.write(route_file)
    with httpx.Client() as client:
        names = [label(client, port)[1] for _ in range(300)]
    assert 0.25 < names.count("green") / 300 < 0.55

    code, out, err = run(
        capsys, "release", "rollout", str(pending.id), "--abort", *key["carol"], "-m", "not now", "--json", *p
    )
    assert code == 0 and json.loads(out)["status"] == "aborted", err
    code, _, err = run(capsys, "rollout", "status", "live", *p)
    assert code == 2 and "no rollout runs in live" in err


def dashboard_pages(root: Path, paths: list[str]) -> list[str]:
    """`conveyor ui` for the project, as a user starts it: the HTML of each path."""
    import subprocess
    import sys

    port = free_port()
    command = [sys.executable, "-m", "conveyor.cli.main", "ui", "--project", str(root), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                return [httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30).text for path in paths]
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("conveyor ui did not answer")
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_rules_naming_unknown_metrics_are_refused(make_project: Callable[..., Path]) -> None:
    from conveyor.errors import ConfigError

    root = make_project(local_port=free_port(), live_policy='\n[release.live.rollout]\nrules = ["accuracy >= 0.9"]')
    with pytest.raises(ConfigError, match="accuracy"):
        load_project(root)
