"""What the recorded release policy holds, through the real CLI: the gate rules, keys' validity windows, who must
approve a change of policy, and which commit a ledger adopts first."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from release_support import FakeClock, Keys, write_build

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.errors import CheckFailed
from conveyor.release.events import Event, sign_event
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases
from conveyor.release.status import EventKind
from conveyor.trust import Identity

pytestmark = pytest.mark.services

GATES = """
[gates]
secrets = "env://CONVEYOR_GATES_"
eval_data = "${secret:eval-data-url}"
metrics = { r2 = ">= 0.0" }
"""
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def commit(root: Path, message: str) -> str:
    """Commit everything in the project (the repository is made on first use); the new commit's hash."""
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".gitignore").write_text(".conveyor/\n")
    subprocess.run([*GIT, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-qm", message], check=True)
    return subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# --- 1. gate rules are policy -------------------------------------------------------------------------------
def test_relaxed_gate_rules_let_no_bad_model_through_until_the_change_is_approved(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project()
    (root / "conveyor.toml").write_text((root / "conveyor.toml").read_text() + GATES)
    commit(root, "project")
    p = ["-p", str(root)]
    carol, ci = str(keys.path("carol")), str(keys.path("ci"))
    good = write_build(root, "gate-good")
    code, _, err = run(capsys, "release", "create", str(good), "--to", "qa", "--key", carol, *p)
    assert code == 0, err

    edit(root / "conveyor.toml", 'r2 = ">= 0.0"', 'r2 = ">= -5000"')
    commit(root, "relax the r2 gate")
    bad = write_build(root, "gate-bad", r2=-3134.0)  # its gate result signed by ci under the relaxed rule
    code, _, err = run(capsys, "gate", str(bad), "--key", ci, *p)
    assert code == 1
    assert "gates.metrics.r2: '>= 0.0' → '>= -5000'" in err and "conveyor release policy propose" in err
    code, _, err = run(capsys, "release", "create", str(bad), "--to", "qa", "--key", carol, *p)
    assert code == 1 and "gates.metrics.r2: '>= 0.0' → '>= -5000'" in err

    edit(root / "conveyor.toml", 'r2 = ">= -5000"', 'r2 = ">= 0.0"')  # the project file as in force again
    code, _, err = run(capsys, "release", "create", str(bad), "--to", "qa", "--key", carol, *p)
    assert code == 1 and "was made under other gate rules than the policy in force" in err
    subprocess.run(["git", "-C", str(root), "checkout", "-q", "--", "conveyor.toml"], check=True)
    code, out, _ = run(capsys, "releases", "list", "--json", *p)
    assert [r["build"] for r in json.loads(out)] == [json.loads(good.read_text())["package"]["digest"]]

    code, out, err = run(capsys, "release", "policy", "propose", "--key", ci, "--json", *p)
    assert code == 0, err
    (proposal,) = json.loads(out)["proposals"]
    assert "gates.metrics.r2: '>= 0.0' → '>= -5000'" in proposal["changes"]
    number = str(proposal["proposal"])
    assert run(capsys, "release", "policy", "approve", number, "--key", str(keys.path("alice")), *p)[0] == 0
    code, out, err = run(capsys, "release", "policy", "approve", number, "--key", str(keys.path("bob")), "--json", *p)
    assert code == 0, err and json.loads(out)["same"] is True

    code, _, err = run(capsys, "gate", str(bad), "--key", ci, *p)
    assert "gate policy" not in err  # it runs now (and stops at the sealed set, which this project has not)
    code, out, err = run(capsys, "release", "create", str(bad), "--to", "qa", "--key", carol, "--json", *p)
    assert code == 0, err
    qa = json.loads(out)
    code, out, err = run(capsys, "release", "promote", str(qa["id"]), "--to", "prod", "--key", carol, "--json", *p)
    assert code == 0, err
    prod = json.loads(out)["id"]
    assert run(capsys, "approve", str(prod), "--key", str(keys.path("alice")), *p)[0] == 0
    code, out, err = run(capsys, "approve", str(prod), "--key", str(keys.path("dave")), "--json", *p)
    assert code == 0 and json.loads(out)["status"] == "live", err


def test_the_sealed_sets_settings_are_policy_too(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pointing `[gates] eval_data` at another secret, or `[gates] secrets` at another store, is a policy change."""
    root = make_project()
    (root / "conveyor.toml").write_text((root / "conveyor.toml").read_text() + GATES)
    p = ["-p", str(root)]
    assert run(capsys, "release", "policy", "propose", "--key", str(keys.path("ci")), *p)[0] == 0
    edit(root / "conveyor.toml", "${secret:eval-data-url}", "${secret:easy-set-url}")
    edit(root / "conveyor.toml", '"env://CONVEYOR_GATES_"', '"env://CONVEYOR_MINE_"')
    code, out, _ = run(capsys, "release", "policy", "show", "--json", *p)
    changes = json.loads(out)["changes"]
    assert "gates.eval_data: '${secret:eval-data-url}' → '${secret:easy-set-url}'" in changes
    assert "gates.secrets: 'env://CONVEYOR_GATES_' → 'env://CONVEYOR_MINE_'" in changes
    code, _, err = run(
        capsys,
        "release",
        "create",
        str(write_build(root, "easy-set")),
        "--to",
        "qa",
        "--key",
        str(keys.path("carol")),
        *p,
    )
    assert code == 1 and "gates.eval_data" in err


# --- 2. validity windows of keys ----------------------------------------------------------------------------
def openssh_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def test_a_keys_validity_window_is_policy_and_is_checked_when_signing_and_in_audit(
    make_project: Callable[..., Path], keys: Keys, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project()
    p = ["-p", str(root)]
    project = load_project(root)
    releases = Releases(project, Ledger.open(project, clock=clock))
    before = releases.policy().project_digest
    until = clock.moment + timedelta(days=1)
    signers = root / "allowed_signers"
    carol_line = f"carol {keys.carol.public.openssh()}"
    window = f'carol valid-before="{openssh_time(until)}" {keys.carol.public.openssh()}'
    edit(signers, carol_line, window)
    releases = Releases(load_project(root), releases.ledger)
    assert releases.policy().project_digest != before  # the window is part of the policy

    qa = releases.create(write_build(root, "window"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    assert pending.status == "pending"
    clock.advance(hours=36)  # past carol's valid-before, inside the release's 2-day window
    with pytest.raises(CheckFailed, match=r"carol's key .* is not valid at .*valid-before") as refused:
        releases.reject(pending.id, keys.carol)
    assert refused.value.exit_code == 1
    assert releases.ledger.verify_audit().ok

    # the same event written by hand, signed by carol's real key: audit names it
    with releases.ledger.writing() as writer:
        event = Event(
            seq=writer.head.seq + 1,
            prev=writer.head.hash,
            at=clock().replace(tzinfo=None),
            kind=EventKind.RELEASE_REJECTED,
            release=pending.id,
            by="carol",
            key=keys.carol.fingerprint,
            data={"comment": None},
        )
        signed = sign_event(event, Identity("carol", keys.carol))
        from conveyor.release.tables import EventRow

        writer.session.add(
            EventRow(
                seq=event.seq,
                at=event.at,
                kind=str(event.kind),
                release_id=event.release,
                principal="carol",
                key=event.key,
                payload=signed.payload.decode(),
                signature=signed.signature,
                prev_hash=event.prev,
                hash=signed.hash,
            )
        )
        writer.head.seq, writer.head.hash = event.seq, signed.hash
    report = releases.ledger.verify_audit()
    assert not report.ok and report.first_bad == event.seq and "not valid at" in (report.problem or "")

    # a key outside its window in allowed_signers: the CLI refuses to sign with exit 1, naming it and the window
    expired = make_project_with_expired_erin(root, keys)
    code, _, err = run(capsys, "release", "create", str(expired), "--to", "qa", "--key", str(keys.path("erin")), *p)
    assert code == 1 and "erin" in err and "valid-before" in err


def make_project_with_expired_erin(root: Path, keys: Keys) -> Path:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    edit(
        root / "allowed_signers",
        f"erin {keys.erin.public.openssh()}",
        f'erin valid-before="{yesterday:%Y%m%d}Z" {keys.erin.public.openssh()}',
    )
    return write_build(root, "expired-erin")


def test_validity_follows_openssh_at_the_edges(keys: Keys, tmp_path: Path) -> None:
    """valid-after and valid-before are inclusive (at or after, at or before), Z is UTC: as ssh-keygen -Y verify
    with -Overify-time decides it."""
    from conveyor.trust import AllowedSigners

    message = tmp_path / "message"
    message.write_bytes(b"edge")
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "conveyor", "-f", str(keys.path("alice")), str(message)],
        check=True,
        capture_output=True,
    )
    line = f'alice valid-after="20260101100000Z",valid-before="20260101120000Z" {keys.alice.public.openssh()}\n'
    (tmp_path / "allowed").write_text(line)
    allowed = AllowedSigners.parse(line)
    for stamp, moment in (
        ("20260101095959Z", datetime(2026, 1, 1, 9, 59, 59, tzinfo=UTC)),
        ("20260101100000Z", datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)),
        ("20260101120000Z", datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)),
        ("20260101120001Z", datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)),
    ):
        done = subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(tmp_path / "allowed"),
                "-I",
                "alice",
                "-n",
                "conveyor",
                "-s",
                f"{message}.sig",
                "-O",
                f"verify-time={stamp}",
            ],
            input=b"edge",
            capture_output=True,
            check=False,
        )
        assert allowed.entries[0].valid_at(moment) == (done.returncode == 0), stamp


# --- 3. who approves a change of policy ---------------------------------------------------------------------
def _proposal(capsys: pytest.CaptureFixture[str], p: list[str], keys: Keys, proposer: str) -> str:
    code, out, err = run(capsys, "release", "policy", "propose", "--key", str(keys.path(proposer)), "--json", *p)
    assert code == 0, err
    (proposal,) = json.loads(out)["proposals"]
    return str(proposal["proposal"])


def _started(make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str], keys: Keys, **kw: object) -> Path:
    root = make_project(**kw)
    assert run(capsys, "release", "policy", "propose", "--key", str(keys.path("ci")), "-p", str(root))[0] == 0
    edit(root / "conveyor.toml", 'timeout = "2d"', 'timeout = "3d"')
    return root


def _approve(capsys: pytest.CaptureFixture[str], p: list[str], keys: Keys, number: str, who: str) -> dict:
    code, out, err = run(capsys, "release", "policy", "approve", number, "--key", str(keys.path(who)), "--json", *p)
    assert code == 0, err
    return json.loads(out)


def test_one_approval_of_a_proposal_by_ci_does_not_change_a_policy_prod_needs_two_for(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _started(make_project, capsys, keys, min_approvals=2)
    p = ["-p", str(root)]
    number = _proposal(capsys, p, keys, "ci")
    assert _approve(capsys, p, keys, number, "alice")["same"] is False
    assert _approve(capsys, p, keys, number, "bob")["same"] is True


def test_two_guarded_stages_each_need_their_own_approver(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(min_approvals=1)
    edit(root / "conveyor.toml", 'env = "stage"\n', 'env = "stage"\napprovers = ["carol"]\nmin_approvals = 1\n')
    assert run(capsys, "release", "policy", "propose", "--key", str(keys.path("ci")), "-p", str(root))[0] == 0
    edit(root / "conveyor.toml", 'timeout = "2d"', 'timeout = "3d"')
    p = ["-p", str(root)]
    number = _proposal(capsys, p, keys, "ci")
    status = _approve(capsys, p, keys, number, "alice")
    assert status["same"] is False and "carol" in " ".join(status["proposals"][0]["missing"])
    assert _approve(capsys, p, keys, number, "carol")["same"] is True


def test_the_proposer_never_approves_their_own_change(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even where a stage lets a requester approve their release, a policy change needs someone else."""
    root = _started(make_project, capsys, keys, min_approvals=1, requester_may_approve=True)
    p = ["-p", str(root)]
    number = _proposal(capsys, p, keys, "alice")
    code, _, err = run(capsys, "release", "policy", "approve", number, "--key", str(keys.path("alice")), *p)
    assert code == 1 and "alice proposed" in err
    assert _approve(capsys, p, keys, number, "bob")["same"] is True


def test_approvers_of_a_stage_needing_no_approval_still_decide_a_change(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _started(make_project, capsys, keys, min_approvals=0)
    p = ["-p", str(root)]
    number = _proposal(capsys, p, keys, "ci")
    status = json.loads(run(capsys, "release", "policy", "show", "--json", *p)[1])
    assert status["same"] is False and status["proposals"][0]["missing"]
    assert _approve(capsys, p, keys, number, "dave")["same"] is True


def test_policy_help_states_who_approves(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "release", "policy", "--help")
    text = " ".join(out.split())
    assert code == 0 and "never the proposer" in text and "strictest stage" in text


# --- 4. the first adoption ----------------------------------------------------------------------------------
def test_in_ci_the_first_adoption_takes_only_the_reviewed_commit(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    reviewed = commit(root, "reviewed project")
    signers = root / "allowed_signers"
    signers.write_text(signers.read_text() + f"mallory {keys.outsider.public.openssh()}\n")
    edit(root / "conveyor.toml", 'approvers = ["alice", "bob", "dave"]', 'approvers = ["alice", "bob", "mallory"]')
    local = commit(root, "add an approver")
    p = ["-p", str(root)]
    path = str(write_build(root, "first-use"))
    carol = str(keys.path("carol"))
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("CONVEYOR_ADOPT", reviewed)
    code, _, err = run(capsys, "release", "create", path, "--to", "qa", "--key", carol, *p)
    assert code == 2 and local in err and "mallory" in err and "--adopt" in err
    monkeypatch.delenv("CONVEYOR_ADOPT")
    code, _, err = run(capsys, "release", "create", path, "--to", "qa", "--key", carol, *p)
    assert code == 2 and local in err
    assert json.loads(run(capsys, "release", "policy", "show", "--json", *p)[1])["in_force"] is None

    code, _, err = run(capsys, "release", "create", path, "--to", "qa", "--key", carol, "--adopt", local[:7], *p)
    assert code == 0, err
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(keys.path("outsider")) + ".pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint in err and local in err
    assert json.loads(run(capsys, "release", "policy", "show", "--json", *p)[1])["in_force"] is not None


def test_on_a_laptop_the_first_adoption_says_what_it_adopts(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    head = commit(root, "project")
    monkeypatch.delenv("CI", raising=False)
    path = str(write_build(root, "laptop"))
    wrong = "0" * 40 if not head.startswith("0" * 7) else "1" * 40
    code, _, err = run(
        capsys,
        "release",
        "create",
        path,
        "--to",
        "qa",
        "--key",
        str(keys.path("carol")),
        "--adopt",
        wrong,
        "-p",
        str(root),
    )
    assert code == 2 and head in err  # a commit named on a laptop must be the one adopted too
    code, _, err = run(
        capsys, "release", "create", path, "--to", "qa", "--key", str(keys.path("carol")), "-p", str(root)
    )
    assert code == 0, err
    assert "adopting" in err and head in err and keys.alice.fingerprint in err
    assert re.search(r"\balice\b", err) and "ci" in err
