"""The ledger itself, on SQLite and PostgreSQL: migrations on open, and every edit of its tables found.

An edited status column, an inserted approval (forged, by an unknown key, or by a real key the rules refuse), an
edited event, a re-hashed chain, deleted events: each is named by `audit verify` and refused at deploy.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import secrets
import sqlite3
from datetime import datetime

import pytest
import sqlalchemy as sa
from release_support import FakeClock, Keys, build

from conveyor.cli.main import main
from conveyor.errors import CheckFailed
from conveyor.release.ledger import PREFIX_FILE, Ledger, LedgerBroken
from conveyor.release.prefix_file import PrefixFile, key_path
from conveyor.release.releases import Releases

pytestmark = pytest.mark.services


def _tables(ledger: Ledger) -> set[str]:
    return set(sa.inspect(ledger.engine).get_table_names())


def test_open_migrates_to_head_once(releases: Releases) -> None:
    ledger = releases.ledger
    assert {"events", "event_head", "releases", "legacy_audit_log", "legacy_releases"} <= _tables(ledger)
    with ledger.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM conveyor_ledger_version")).scalar_one() == "0003"
    again = Ledger.from_url(ledger.engine.url.render_as_string(hide_password=False))
    assert again.verify_audit().ok


def _pending_in_prod(releases: Releases, keys: Keys) -> int:
    """qa live, then prod requested by carol and approved once by alice (one more approval needed)."""
    qa = releases.create(build(releases, "audit-a"), "qa", keys.carol)
    pending = releases.promote(qa.id, "prod", keys.carol)
    releases.approve(pending.id, keys.alice)
    return pending.id


def _rows(ledger: Ledger) -> list[dict]:
    with ledger.engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.text("SELECT * FROM events ORDER BY seq"))]


def _write_event(ledger: Ledger, row: dict, *, insert: bool) -> None:
    """Store an event row and move the head to it, as someone with write access to the database could."""
    statement = (
        "INSERT INTO events (seq, at, kind, release_id, principal, key, payload, signature, prev_hash, hash) "
        "VALUES (:seq, :at, :kind, :release_id, :principal, :key, :payload, :signature, :prev_hash, :hash)"
        if insert
        else "UPDATE events SET payload = :payload, signature = :signature, prev_hash = :prev_hash, hash = :hash, "
        "principal = :principal, key = :key, kind = :kind WHERE seq = :seq"
    )
    with ledger.engine.begin() as connection:
        connection.execute(sa.text(statement), row)
        connection.execute(sa.text("UPDATE event_head SET seq = :seq, hash = :hash WHERE id = 1"), row)


def _forged_event(last: dict, payload: dict, signature: str) -> dict:
    payload = {**payload, "seq": last["seq"] + 1, "prev": last["hash"]}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        "seq": payload["seq"],
        "at": last["at"],
        "kind": payload["kind"],
        "release_id": payload["release"],
        "principal": payload["by"],
        "key": payload["key"],
        "payload": text,
        "signature": signature,
        "prev_hash": last["hash"],
        "hash": hashlib.sha256(text.encode()).hexdigest(),
    }


def _approval_payload(last: dict, release_id: int, principal: str, fingerprint: str) -> dict:
    previous = json.loads(last["payload"])
    return {
        "v": 1,
        "at": previous["at"],
        "kind": "release.approved",
        "release": release_id,
        "by": principal,
        "key": fingerprint,
        "data": {"comment": None},
    }


def test_an_edited_status_column_is_refused_at_deploy_and_reported(releases: Releases, keys: Keys) -> None:
    pending = _pending_in_prod(releases, keys)
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("UPDATE releases SET status = 'approved' WHERE id = :id"), {"id": pending})
    with pytest.raises(
        LedgerBroken, match=f"releases row {pending}: status says 'approved', its signed events 'pending'"
    ):
        releases.resume(pending, keys.bob)
    report = releases.ledger.verify_audit()
    assert not report.ok and report.problem is None and report.edited_rows
    assert releases.ledger.rebuild_release_rows() == 2
    with pytest.raises(CheckFailed, match=f"release {pending} is pending and cannot be deployed now"):
        releases.resume(pending, keys.bob)
    assert releases.show(pending).status == "pending" and releases.history("prod") == []


@pytest.mark.parametrize("signer", ["copied", "outsider", "carol"])
def test_an_inserted_approval_is_named_and_nothing_deploys(releases: Releases, keys: Keys, signer: str) -> None:
    """A forged approval: a signature copied from alice's real one, a key not in allowed_signers, or the requester's
    real key (the signature holds, but the recorded policy refuses the requester's approval)."""
    from conveyor.trust import sign

    pending = _pending_in_prod(releases, keys)
    rows = _rows(releases.ledger)
    last = rows[-1]
    if signer == "copied":
        alice_approval = next(r for r in rows if r["kind"] == "release.approved")
        row = _forged_event(last, _approval_payload(last, pending, "bob", keys.bob.fingerprint), "")
        row["signature"] = alice_approval["signature"]
        expected = "event .*release.approved by bob.*"
    else:
        key = getattr(keys, signer)
        principal = "bob" if signer == "outsider" else "carol"
        row = _forged_event(last, _approval_payload(last, pending, principal, key.fingerprint), "")
        row["signature"] = sign(row["payload"].encode(), key)
        expected = "not in the ledger's policy" if signer == "outsider" else "carol is not an approver of prod"
    _write_event(releases.ledger, row, insert=True)

    report = releases.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, row["seq"]), report
    assert re.search(expected, report.problem or ""), report.problem
    with pytest.raises(LedgerBroken, match=f"event {row['seq']}"):
        releases.resume(pending, keys.bob)
    with pytest.raises(LedgerBroken):
        releases.approve(pending, keys.dave)
    assert releases.show(pending).verification.ok is False


def test_an_edited_event_and_a_rehashed_chain_are_named(releases: Releases, keys: Keys) -> None:
    """The prod request's recorded policy lowered to min_approvals = 0, the chain re-hashed after it and the head
    moved: the request's signature no longer holds, so verification stops there."""
    pending = _pending_in_prod(releases, keys)
    rows = _rows(releases.ledger)
    request = next(r for r in rows if r["kind"] == "release.requested" and r["release_id"] == pending)
    previous = request["prev_hash"]
    for row in rows[rows.index(request) :]:
        payload = json.loads(row["payload"])
        payload["prev"] = previous
        if row is request:
            payload["data"]["policy"]["min_approvals"] = 0
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        row.update(payload=text, prev_hash=previous, hash=hashlib.sha256(text.encode()).hexdigest())
        _write_event(releases.ledger, row, insert=False)
        previous = row["hash"]
    report = releases.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, request["seq"])
    assert "signature" in (report.problem or "")
    with pytest.raises(LedgerBroken, match=f"event {request['seq']}"):
        releases.resume(pending, keys.bob)


def test_deleted_events_are_named(releases: Releases, keys: Keys) -> None:
    _pending_in_prod(releases, keys)
    last = releases.ledger.verify_audit().entries
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE seq = 2"))
    report = releases.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, 2) and "deleted" in (report.problem or "")
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE seq > 1"))
    report = releases.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, 2) and f"events 2-{last} deleted" in (report.problem or "")


def test_cli_audit_verify_exit_codes(
    releases: Releases, keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _pending_in_prod(releases, keys)
    monkeypatch.setenv("CONVEYOR_LEDGER_URL", releases.ledger.engine.url.render_as_string(hide_password=False))
    project = ["--project", str(releases.project.root)]
    assert main(["audit", "verify", *project]) == 0
    assert "ledger verified" in capsys.readouterr().err
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("UPDATE events SET payload = replace(payload, 'carol', 'erin') WHERE seq = 4"))
    assert main(["audit", "verify", *project]) == 1
    assert "event 4" in capsys.readouterr().err
    assert main(["audit", "verify", "--json", *project]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad"] == 4


def test_events_cut_off_the_end_pass_the_signatures_but_not_a_published_checkpoint(
    releases: Releases, keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the head row moved back too, a ledger cut short is a valid chain of valid signatures: only a
    checkpoint kept outside the database shows what was taken away (or that the ledger was swapped)."""
    pending = _pending_in_prod(releases, keys)
    monkeypatch.setenv("CONVEYOR_LEDGER_URL", releases.ledger.engine.url.render_as_string(hide_password=False))
    project = ["--project", str(releases.project.root)]
    assert main(["audit", "verify", "--json", *project]) == 0
    checkpoint = json.loads(capsys.readouterr().out)["checkpoint"]
    assert main(["audit", "verify", "--expect", checkpoint, *project]) == 0
    assert f"checkpoint {checkpoint}" in capsys.readouterr().err
    releases.approve(pending, keys.bob)  # later events do not disturb an earlier checkpoint
    assert main(["audit", "verify", "--expect", checkpoint, *project]) == 0
    capsys.readouterr()

    seq = int(checkpoint.split(":")[0])
    keep = _rows(releases.ledger)[seq - 3]  # cut off the end, head moved back: the chain itself stays valid
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE seq > :seq"), keep)
        connection.execute(sa.text("UPDATE event_head SET seq = :seq, hash = :hash WHERE id = 1"), keep)
    assert main(["audit", "verify", *project]) == 1  # this checkout saw the longer ledger: it knows by itself
    assert "this checkout saw the ledger at event" in capsys.readouterr().err
    with pytest.raises(LedgerBroken, match="does not hold what was seen of it before"):
        releases.ledger.rebuild_release_rows()
    (releases.project.state_dir / "ledger-seen").unlink()  # another checkout, which never saw the longer one
    releases.ledger.rebuild_release_rows()  # the releases table made to agree (conveyor audit rebuild)
    assert main(["audit", "verify", *project]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--expect", checkpoint, *project]) == 1
    assert f"names event {seq}, but the ledger ends at event {keep['seq']}" in capsys.readouterr().err
    monkeypatch.setenv("CONVEYOR_LEDGER_CHECKPOINT", checkpoint)  # as CI hands it over: every command checks it
    assert main(["audit", "verify", *project]) == 1
    capsys.readouterr()
    reopened = Ledger.from_url(releases.ledger.engine.url.render_as_string(hide_password=False))
    with pytest.raises(LedgerBroken, match=f"ledger ends at event {keep['seq']}"), reopened.writing():
        pass  # nothing is written to it: no request, approval or deployment
    monkeypatch.delenv("CONVEYOR_LEDGER_CHECKPOINT")
    other = f"{keep['seq']}:{'0' * 16}"
    assert main(["audit", "verify", "--expect", other, *project]) == 1
    assert "the ledger was rewritten from there, or replaced" in capsys.readouterr().err
    assert main(["audit", "verify", "--expect", "latest", *project]) == 2
    assert "is not SEQ:HASH" in capsys.readouterr().err


def test_bad_ledger_url_is_a_configuration_error() -> None:
    from conveyor.errors import ConfigError

    with pytest.raises(ConfigError, match="not a SQLAlchemy URL"):
        Ledger.from_url("not a url")
    with pytest.raises(CheckFailed, match="cannot open the ledger"):
        Ledger.from_url("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


def test_a_backdated_event_is_named(releases: Releases, keys: Keys) -> None:
    """An approver's own, validly signed approval written into the database with a time before the event it
    follows (to slip in before an approval window closed) breaks the rule that events are never backdated."""
    from conveyor.trust import sign

    pending = _pending_in_prod(releases, keys)
    last = _rows(releases.ledger)[-1]
    payload = {**_approval_payload(last, pending, "dave", keys.dave.fingerprint), "at": "2000-01-01T00:00:00.000000"}
    row = {**_forged_event(last, payload, ""), "at": datetime(2000, 1, 1)}
    row["signature"] = sign(row["payload"].encode(), keys.dave)
    _write_event(releases.ledger, row, insert=True)
    report = releases.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, row["seq"]) and "never backdated" in (report.problem or "")


def test_audit_verify_says_when_the_policy_in_force_is_not_the_projects(
    releases: Releases, keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _pending_in_prod(releases, keys)
    monkeypatch.setenv("CONVEYOR_LEDGER_URL", releases.ledger.engine.url.render_as_string(hide_password=False))
    toml = releases.project.file
    toml.write_text(toml.read_text().replace('timeout = "2d"', 'timeout = "3d"'))
    assert main(["audit", "verify", "--json", "--project", str(releases.project.root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["policy_matches_project"] is False


def test_the_ledger_server_keeps_its_own_time_beside_a_signers_clock(
    releases: Releases, keys: Keys, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Event times are the signer's clock; PostgreSQL records its own beside them, and `audit list` shows both
    where they are more than a minute apart (a signer's clock 10 minutes behind, here)."""
    from conveyor.release import audit_entries

    clock.advance(minutes=-10)
    releases.create(build(releases, "skewed-clock"), "qa", keys.carol)
    entries = audit_entries(releases.project, ledger=releases.ledger)
    if releases.ledger.engine.dialect.name != "postgresql":  # one machine's clock: nothing to compare with
        assert entries and all(e.recorded_at is None and e.clock_gap is None for e in entries)
        return
    gaps = [e.clock_gap.total_seconds() / 60 for e in entries if e.clock_gap is not None]
    assert len(gaps) == len(entries) and all(-10.5 < gap < -9.5 for gap in gaps)
    assert all(-630 < e.to_dict()["clock_gap_seconds"] < -570 for e in entries)
    capsys.readouterr()
    assert main(["audit", "list", "-p", str(releases.project.root)]) == 0
    out = capsys.readouterr().out
    assert "the ledger server recorded it at" in out and "the signer's clock was 10 min" in out and "behind it" in out


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sequence numbers of the stored events the verifiers check from now on."""
    from conveyor.release import audit

    checked: list[int] = []
    check = audit.Verifier.check

    def counting(self: audit.Verifier, row: object) -> None:
        checked.append(row.seq)  # type: ignore[attr-defined]
        check(self, row)  # type: ignore[arg-type]

    monkeypatch.setattr(audit.Verifier, "check", counting)
    return checked


def test_a_ledger_read_again_verifies_only_the_events_appended_since(
    releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write re-verified the whole chain (1,000 events: 0.27 s, O(n)); a Ledger that verified the chain goes
    on from the newest event it verified, including events another writer appended."""
    pending = _pending_in_prod(releases, keys)
    url = releases.ledger.engine.url.render_as_string(hide_password=False)
    releases = Releases(releases.project, Ledger.from_url(url, clock=releases.ledger.clock))  # as a new process
    checked = _counting_checks(monkeypatch)
    head = releases.ledger.verified().report.entries
    assert checked == list(range(1, head + 1))  # the first reading walks the whole chain, once
    checked.clear()
    releases.approve(pending, keys.bob)  # its own writes (approval, claim, steps, live) need no new walk
    assert checked == [] and releases.show(pending).status == "live"
    other = Releases(releases.project, Ledger.from_url(url, clock=releases.ledger.clock))  # another process
    before = releases.ledger.verified().report.entries
    other.create(build(other, "audit-b"), "qa", keys.carol)  # requested, claimed, deployed, live: by `other`
    checked.clear()
    verified = releases.ledger.verified()
    after = verified.report.entries
    assert after > before and checked == list(range(before + 1, after + 1)) and verified.state.seq == after
    checked.clear()
    assert releases.ledger.verify_audit().ok and checked == list(range(1, after + 1))  # audit walks it all


def test_a_new_process_resumes_from_the_prefix_its_checkout_kept(
    releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each CLI command opened a new Ledger and walked the whole chain (10,000 events: 9 s); a new Ledger of the
    project starts from what a process of this checkout verified and kept, and checks only what came since."""
    pending = _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    assert (releases.project.state_dir / PREFIX_FILE).is_file()
    kept = PrefixFile(releases.project.state_dir / PREFIX_FILE, releases.ledger.url).seq()
    assert kept is not None and kept >= 1  # kept again once it is KEEP_EVERY events behind
    checked = _counting_checks(monkeypatch)
    fresh = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    head = fresh.ledger.verified().report.entries
    assert checked == list(range(kept + 1, head + 1)) and fresh.ledger.verified().state.seq == head
    other = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    other.approve(pending, keys.bob)  # approval, claim, steps, live: checked only by the writer's own rules
    checked.clear()
    again = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    after = again.ledger.verified()
    assert after.report.entries > head and checked == list(range(kept + 1, after.report.entries + 1))
    assert again.show(pending).status == "live"
    checked.clear()
    assert again.ledger.verify_audit().ok and checked == list(range(1, after.report.entries + 1))


def _kept_db(releases: Releases) -> sqlite3.Connection:
    return sqlite3.connect(releases.project.state_dir / PREFIX_FILE, isolation_level=None)


def _kept_at_head(releases: Releases) -> int:
    """Keep the verified prefix at the ledger's head, as a walk of the whole chain does: its event."""
    PrefixFile(releases.project.state_dir / PREFIX_FILE, releases.ledger.url).forget()
    report = Ledger.open(releases.project, clock=releases.ledger.clock).verified().report
    assert PrefixFile(releases.project.state_dir / PREFIX_FILE, releases.ledger.url).seq() == report.entries
    return report.entries


def test_a_forged_prefix_file_is_never_loaded(releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept prefix is a pickle: one whose MAC (under this user's key, outside the project) does not verify is
    not unpickled, whatever its header says, and the whole chain is walked."""
    _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    marker = releases.project.root / "unpickled"
    with _kept_db(releases) as kept:
        kept.execute("UPDATE head SET blob = ?", (pickle.dumps(_Touch(str(marker))),))  # the old MAC, a new body
    checked = _counting_checks(monkeypatch)
    fresh = Ledger.open(releases.project, clock=releases.ledger.clock)
    report = fresh.verified().report
    assert report.ok and checked == list(range(1, report.entries + 1)) and not marker.exists()
    key_path().write_text(secrets.token_hex(32) + "\n")  # another key: the state that was kept is not trusted either
    checked.clear()
    assert Ledger.open(releases.project, clock=releases.ledger.clock).verified().report.ok
    assert checked == list(range(1, report.entries + 1))


def test_a_prefix_kept_by_other_code_is_walked_past_once_and_kept_again(
    releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written by another version of conveyor is never read; the walk that replaces it is kept at once, so
    the command after it resumes, instead of every command walking until 100 more events are appended."""
    from conveyor.release import prefix_file

    _pending_in_prod(releases, keys)
    monkeypatch.setattr(prefix_file, "code_digest", lambda: "other code")
    head = _kept_at_head(releases)
    monkeypatch.undo()
    checked = _counting_checks(monkeypatch)
    assert Ledger.open(releases.project, clock=releases.ledger.clock).verified().report.ok
    assert checked == list(range(1, head + 1))
    checked.clear()
    assert Ledger.open(releases.project, clock=releases.ledger.clock).verified().report.ok and checked == []


def test_a_new_process_reads_only_the_releases_its_event_can_change(releases: Releases, keys: Keys) -> None:
    """The kept prefix held every release in one pickle (10,000 events: 0.29 s to load in each new process, O(n));
    a new process reads from it the releases its event can change (the one it names, what is live), each from its
    own row, and what it shows is what a walk of the whole chain shows."""
    superseded = [releases.create(build(releases, f"kept-{i}"), "qa", keys.carol).id for i in range(4)]
    pending = _pending_in_prod(releases, keys)
    _kept_at_head(releases)
    fresh = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    fresh.reject(pending, keys.bob)
    state = fresh.ledger.verified().state
    live = set(state.live.values())
    assert set(state.releases._loaded) <= {pending} | live and not set(superseded) & set(state.releases._loaded)
    url = releases.ledger.engine.url.render_as_string(hide_password=False)
    walked = Releases(releases.project, Ledger.from_url(url, clock=releases.ledger.clock))
    assert fresh.snapshot().releases() == walked.snapshot().releases()
    assert fresh.show(pending).status == "rejected" and len(fresh.snapshot().releases(limit=2)) == 2


def test_two_processes_of_one_checkout_keeping_the_prefix_in_turn_each_read_what_the_chain_says(
    releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Ledgers of one checkout write and keep the prefix in turn: a release one of them has not read since the
    other rewrote its row is read as the chain says (from a walk when the row moved on), never as it was."""
    from conveyor.release import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "KEEP_EVERY", 0)
    pending = [releases.create(build(releases, "turn-qa"), "qa", keys.carol).id]
    pending.append(releases.promote(pending[0], "prod", keys.carol).id)
    _kept_at_head(releases)
    first = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    second = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    assert first.show(pending[0]).status == "live" and second.show(pending[1]).status == "pending"
    second.approve(pending[1], keys.alice)  # second rewrites the prod release's row, which first has not read
    checked = _counting_checks(monkeypatch)
    first.approve(pending[1], keys.bob)  # first folds second's approval, then adds its own
    assert 1 in checked  # the row first needed had moved on: the releases came from a walk, not from that row
    url = releases.ledger.engine.url.render_as_string(hide_password=False)
    walked = Releases(releases.project, Ledger.from_url(url, clock=releases.ledger.clock)).snapshot().releases()
    for desk in (first, second, Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))):
        assert desk.snapshot().releases() == walked
    assert walked[0].id == pending[1] and walked[0].status == "live" and walked[1].status == "live"


def test_a_kept_release_forged_or_replayed_is_taken_from_the_chain(
    releases: Releases, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release row of the kept prefix is a pickle too: one forged (its MAC no longer verifies), or an older row
    put back (written at another event than the kept state names) is never used; the releases come from a walk."""
    from conveyor.release import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "KEEP_EVERY", 0)  # kept again after every event
    first = releases.create(build(releases, "kept-a"), "qa", keys.carol).id
    pending = _pending_in_prod(releases, keys)
    _kept_at_head(releases)
    with _kept_db(releases) as kept:
        older = kept.execute("SELECT version, mac, blob FROM releases WHERE id = ?", (pending,)).fetchone()
    Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock)).reject(pending, keys.bob)
    marker = releases.project.root / "unpickled"
    with _kept_db(releases) as kept:
        assert kept.execute("SELECT version FROM releases WHERE id = ?", (pending,)).fetchone()[0] > older[0]
        kept.execute("UPDATE releases SET version = ?, mac = ?, blob = ? WHERE id = ?", (*older, pending))
        kept.execute("UPDATE releases SET blob = ? WHERE id = ?", (pickle.dumps(_Touch(str(marker))), first))
    checked = _counting_checks(monkeypatch)
    fresh = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    assert fresh.show(pending).status == "rejected" and checked[:1] == [1]  # the replayed row was not used: a walk was
    assert fresh.show(first).status == "superseded" and not marker.exists()


class _Touch:
    """Unpickled, it makes a file: the proof that a pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_a_releases_row_inserted_past_the_newest_release_is_found_by_a_reader_that_verified_the_chain(
    releases: Releases, keys: Keys
) -> None:
    """A reader that verified the chain probes the releases table's newest row (not a count of every row): a row
    inserted past the newest signed request is found, and nothing more is written."""
    pending = _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    with releases.ledger.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO releases (id, stage, kind, status, build, requested_by, requested_at) "
                "SELECT :id, stage, kind, 'live', build, requested_by, requested_at FROM releases WHERE id = :pending"
            ),
            {"id": pending + 1, "pending": pending},
        )
    report = releases.ledger.verified().report
    assert not report.ok and f"releases row {pending + 1} has no signed request (inserted)" in report.trouble
    with pytest.raises(LedgerBroken):
        releases.approve(pending, keys.bob)


def test_a_kept_prefix_of_a_rewritten_chain_is_not_trusted(releases: Releases, keys: Keys) -> None:
    """The event a kept prefix ends at is read again: a chain re-hashed from there is walked whole and refused."""
    pending = _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    last = _rows(releases.ledger)[-1]
    edited = last["payload"].replace('"kind"', '"kind" ', 1)
    row = {**last, "payload": edited, "hash": hashlib.sha256(edited.encode()).hexdigest()}
    _write_event(releases.ledger, row, insert=False)
    fresh = Releases(releases.project, Ledger.open(releases.project, clock=releases.ledger.clock))
    assert not fresh.ledger.verified().report.ok
    with pytest.raises(LedgerBroken):
        fresh.approve(pending, keys.bob)
    assert not (releases.project.state_dir / PREFIX_FILE).exists()


def test_a_chain_cut_under_a_reader_that_verified_it_is_refused(releases: Releases, keys: Keys) -> None:
    pending = _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    rows = _rows(releases.ledger)
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE seq = :seq"), {"seq": rows[-1]["seq"]})
        connection.execute(
            sa.text("UPDATE event_head SET seq = :seq, hash = :hash WHERE id = 1"),
            {"seq": rows[-2]["seq"], "hash": rows[-2]["hash"]},
        )
    report = releases.ledger.verified().report
    assert not report.ok and f"event {rows[-1]['seq']}" in report.trouble, report.trouble
    with pytest.raises(LedgerBroken):
        releases.approve(pending, keys.bob)


def test_a_write_never_committed_leaves_nothing_in_the_state_read_next(releases: Releases, keys: Keys) -> None:
    from conveyor.release.status import EventKind, ReleaseStatus
    from conveyor.trust import AllowedSigners, identify

    pending = _pending_in_prod(releases, keys)
    head = releases.ledger.verified().report.entries
    bob = identify(AllowedSigners.parse(keys.allowed_signers), keys.bob)
    with pytest.raises(RuntimeError, match="before committing"), releases.ledger.writing() as writer:
        writer.append(EventKind.RELEASE_REJECTED, pending, {"comment": "never committed"}, bob)
        assert writer.state.releases[pending].status == ReleaseStatus.REJECTED
        raise RuntimeError("the process died before committing")
    state = releases.ledger.verified().state
    assert state.seq == head and state.releases[pending].status == ReleaseStatus.PENDING
    assert releases.approve(pending, keys.bob).status == "live"


def test_an_old_event_edited_under_a_reader_is_found_by_audit_and_then_refused(releases: Releases, keys: Keys) -> None:
    """A Ledger that verified the chain checks that its newest verified event is still in place, not every older
    one: `audit verify` walks the whole chain and names it, and from then on no reader resumes from a kept prefix."""
    pending = _pending_in_prod(releases, keys)
    assert releases.ledger.verified().report.ok
    with releases.ledger.engine.begin() as connection:
        connection.execute(sa.text("UPDATE events SET payload = payload || ' ' WHERE seq = 2"))
    url = releases.ledger.engine.url.render_as_string(hide_password=False)
    assert "event 2 was edited" in Ledger.from_url(url).verify_audit().trouble
    report = releases.ledger.verify_audit()
    assert not report.ok and report.first_bad == 2
    with pytest.raises(LedgerBroken, match="event 2"):
        releases.approve(pending, keys.bob)
