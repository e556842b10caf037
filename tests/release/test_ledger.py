"""The ledger itself: migrations on open, on SQLite and PostgreSQL, and the hash-chained audit log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from release_support import build

from conveyor.cli.main import main
from conveyor.release import Ledger, Releases

pytestmark = pytest.mark.services


def _tables(ledger: Ledger) -> set[str]:
    return set(sa.inspect(ledger.engine).get_table_names())


def test_open_migrates_to_head_once(desk: Releases) -> None:
    ledger = desk.ledger
    assert {"builds", "releases", "approvals", "deployments", "deployment_steps", "audit_log", "audit_head"} <= _tables(
        ledger
    )
    with ledger.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM conveyor_ledger_version")).scalar_one() == "0001"
    again = Ledger.from_url(ledger.engine.url.render_as_string(hide_password=False))
    assert again.verify_audit().ok


def _some_history(desk: Releases) -> None:
    first = desk.create(build(desk, "audit-a"), "qa", actor="carol")
    desk.promote(first.id, "prod", actor="carol")


def test_audit_chain_verifies_and_detects_an_edited_entry(desk: Releases) -> None:
    _some_history(desk)
    report = desk.ledger.verify_audit()
    assert report.ok and report.entries >= 6, report
    with desk.ledger.engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    report = desk.ledger.verify_audit()
    assert not report.ok
    assert report.first_bad == 3
    assert "edited" in (report.problem or "")


def test_audit_chain_detects_a_deleted_entry(desk: Releases) -> None:
    _some_history(desk)
    with desk.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    report = desk.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, 2)
    assert "deleted" in (report.problem or "")


def test_audit_chain_detects_entries_cut_from_the_end(desk: Releases) -> None:
    _some_history(desk)
    last = desk.ledger.verify_audit().entries
    with desk.ledger.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_log WHERE seq = :seq"), {"seq": last})
    report = desk.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, last)


def test_audit_chain_detects_a_rewritten_hash(desk: Releases) -> None:
    """Recomputing an edited entry's own hash still breaks the link to the next entry."""
    from conveyor.release.audit import entry_hash

    _some_history(desk)
    entry = desk.ledger.audit_entries()[1]
    forged = entry_hash(entry.seq, entry.at, "mallory", entry.action, entry.subject, entry.details, entry.prev_hash)
    with desk.ledger.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE audit_log SET actor = 'mallory', hash = :h WHERE seq = :s"), {"h": forged, "s": entry.seq}
        )
    report = desk.ledger.verify_audit()
    assert (report.ok, report.first_bad) == (False, entry.seq + 1)


def test_cli_audit_verify_exit_codes(desk: Releases, capsys: pytest.CaptureFixture[str]) -> None:
    _some_history(desk)
    root = str(desk.project.root)
    assert main(["audit", "verify", "-p", root]) == 0
    with desk.ledger.engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_log SET details = '{}' WHERE seq = 4"))
    capsys.readouterr()
    assert main(["audit", "verify", "-p", root]) == 1
    assert "entry 4" in capsys.readouterr().err


def test_bad_ledger_url_is_a_configuration_error() -> None:
    from conveyor.errors import CheckFailed, ConfigError

    with pytest.raises(ConfigError, match="not a SQLAlchemy URL"):
        Ledger.from_url("not a url")
    with pytest.raises(CheckFailed, match="cannot open the ledger"):
        Ledger.from_url("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
