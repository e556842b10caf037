"""What a signer can do to the ledger without forging anything: list one key under two names, or sign with a
clock that runs far ahead. Neither may brick the ledger or stretch its rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import FakeClock, Keys, build

from conveyor.config import load_project
from conveyor.errors import ConfigError
from conveyor.release.ledger import Ledger, LedgerBroken
from conveyor.release.releases import Releases


def _with_extra_signer(root: Path, keys: Keys, name: str, key_of: str) -> None:
    signers = root / "allowed_signers"
    signers.write_text(signers.read_text() + f"{name} {keys.path(key_of + '.pub').read_text().strip()}\n")


def test_a_key_under_two_names_is_refused_before_anything_is_signed(
    make_project: Callable[..., Path], keys: Keys
) -> None:
    """`zz-bot` with ci's key: once, conveyor signed an event as zz-bot that its own verifier then refused
    ("event 1 says it is by zz-bot, but it was signed by ci's key"), and the ledger was bricked."""
    root = make_project()
    _with_extra_signer(root, keys, "zz-bot", "ci")
    desk = Releases(load_project(root))
    with pytest.raises(ConfigError, match=r"lists one key .* under two names, ci and zz-bot"):
        desk.create(build(desk, "two-names"), "qa", keys.ci)
    assert desk.ledger.verify_audit().ok and desk.ledger.events() == []


def test_one_person_cannot_approve_twice_under_two_names(make_project: Callable[..., Path], keys: Keys) -> None:
    """prod needs 2 approvals; `alice2` with alice's key would let alice give both."""
    root = make_project(min_approvals=2)
    _with_extra_signer(root, keys, "alice2", "alice")
    text = (root / "conveyor.toml").read_text()
    (root / "conveyor.toml").write_text(
        text.replace('approvers = ["alice", "bob", "dave"]', 'approvers = ["alice", "alice2", "bob"]')
    )
    desk = Releases(load_project(root))
    with pytest.raises(ConfigError, match="under two names, alice and alice2"):
        desk.create(build(desk, "twice"), "qa", keys.carol)


def test_a_signer_whose_clock_runs_400_days_ahead_is_named_and_bends_no_rule(
    make_project: Callable[..., Path], keys: Keys, clock: FakeClock
) -> None:
    project = load_project(make_project())
    honest = Releases(project, Ledger.open(project))
    qa = honest.create(build(honest, "skew"), "qa", keys.carol)
    clock.advance(days=400)  # carol's machine
    skewed = Releases(project, Ledger.open(project, clock=clock))
    pending = skewed.promote(qa.id, "prod", keys.carol)

    report = honest.ledger.verify_audit()
    assert not report.ok and report.first_bad is not None
    assert "ahead of this machine's clock" in (report.problem or ""), report.problem
    with pytest.raises(LedgerBroken, match=f"event {report.first_bad}"):
        honest.approve(pending.id, keys.alice)
    live = honest.history("qa")
    assert [entry.release for entry in live] == [qa.id]  # what came before the bad event still reads


@pytest.mark.parametrize("how", ["deleted", "emptied", "older copy"])
def test_a_ledger_deleted_emptied_or_rolled_back_is_not_silently_started_again(
    make_project: Callable[..., Path], keys: Keys, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A 0-byte or deleted ledger.db was recreated ("0 events ok") in a project that had releases."""
    import shutil

    from conveyor.cli.main import main

    root = make_project()
    desk = Releases(load_project(root))
    db = root / ".conveyor" / "ledger.db"
    first = desk.create(build(desk, "kept-a"), "qa", keys.carol)
    shutil.copyfile(db, root / "older.db")
    desk.promote(first.id, "prod", keys.carol)
    desk.ledger.close()
    if how == "deleted":
        db.unlink()
    elif how == "emptied":
        db.write_bytes(b"")
    else:
        shutil.copyfile(root / "older.db", db)
    reopened = Releases(load_project(root))
    with pytest.raises(LedgerBroken, match="this checkout saw the ledger at event"):
        reopened.create(build(reopened, "kept-b"), "qa", keys.carol)
    assert main(["audit", "verify", "--project", str(root)]) == 1
    monkeypatch.setenv("CONVEYOR_NEW_LEDGER", "1")  # on purpose: a new ledger
    fresh = Releases(load_project(root))
    assert fresh.create(build(fresh, "kept-c"), "qa", keys.carol).status == "live"
