"""`release stop` is a decision, signed like the others: who took a stage down, when and why, in the ledger.

A stage with approvers is stopped only by one of them (or a break_glass principal); the stop is in `history`
(and `--at` a later time shows the stage as stopped), the stage's alias leaves its registry, and a rollback brings
the stopped release back under the stage's approvals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import Keys, alias_version, build, run

from conveyor.config import load_project
from conveyor.release.releases import Releases

pytestmark = pytest.mark.services


def _events(capsys: pytest.CaptureFixture[str], p: list[str]) -> int:
    code, out, err = run(capsys, "audit", "list", "--json", *p)
    assert code == 0, err
    return len(json.loads(out))


@pytest.fixture
def live_in_prod(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], int]:
    """A project whose build went live in qa, then in prod (requested by carol, approved by alice and bob)."""
    root = make_project()
    path = build(Releases(load_project(root)), "stop-flow", model_version="3")
    p = ["-p", str(root)]
    key = {name: ["--key", str(keys.path(name))] for name in ("alice", "bob", "carol", "dave", "erin", "outsider")}
    code, out, err = run(capsys, "release", "create", str(path), "--to", "qa", *key["carol"], "--json", *p)
    assert code == 0, err
    code, out, err = run(
        capsys, "release", "promote", str(json.loads(out)["id"]), "--to", "prod", *key["carol"], "--json", *p
    )
    assert code == 0, err
    prod = json.loads(out)["id"]
    # an approval comment is the approver's text: shown as written, never read as console markup
    assert run(capsys, "approve", str(prod), *key["alice"], "-m", "[/] [bold]ok[/bold]", *p)[0] == 0
    code, out, err = run(capsys, "approve", str(prod), *key["bob"], "--json", *p)
    assert code == 0 and json.loads(out)["status"] == "live", err
    return p, prod


def test_a_stop_is_signed_by_an_approver_and_shown_in_history(
    live_in_prod: tuple[list[str], int], keys: Keys, capsys: pytest.CaptureFixture[str], mlflow_registry: str
) -> None:
    p, prod = live_in_prod
    code, out, err = run(capsys, "releases", "show", str(prod), *p)
    assert code == 0 and "[/] [bold]ok[/bold]" in out, err
    assert alias_version(mlflow_registry, "prod") == "3"
    before = _events(capsys, p)

    # the requester is no approver of prod, and an unlisted key signs nothing: refused, nothing recorded
    code, _, err = run(capsys, "release", "stop", "prod", "--key", str(keys.path("carol")), *p)
    assert code == 1 and "carol may not stop prod" in err and "alice, bob, dave" in err
    code, _, err = run(capsys, "release", "stop", "prod", "--key", str(keys.path("outsider")), *p)
    assert code == 1 and "allowed_signers" in err  # a refused signature
    code, _, err = run(capsys, "release", "stop", "prod", "--key", str(keys.path("alice")), "--as", "bob", *p)
    assert code in (1, 2) and "alice" in err
    assert _events(capsys, p) == before
    assert alias_version(mlflow_registry, "prod") == "3"

    code, out, err = run(
        capsys, "release", "stop", "prod", "--key", str(keys.path("dave")), "-m", "incident [42]", "--json", *p
    )
    assert code == 0, err
    stopped = json.loads(out)
    assert (stopped["release"], stopped["by"], stopped["reason"]) == (prod, "dave", "incident [42]")
    assert any("alias prod removed" in item for item in stopped["stopped"])
    assert alias_version(mlflow_registry, "prod") is None
    assert _events(capsys, p) == before + 1

    code, out, _ = run(capsys, "releases", "show", str(prod), "--json", *p)
    shown = json.loads(out)
    assert shown["status"] == "stopped" and shown["deployment"]["stopped_by"] == "dave"
    assert "stage.stopped" in {s["event"] for s in shown["signers"]}
    code, out, _ = run(capsys, "history", "prod", "--json", *p)
    (entry,) = json.loads(out)
    assert (entry["stopped_by"], entry["stop_reason"]) == ("dave", "incident [42]") and entry["live_until"]
    code, out, _ = run(capsys, "history", "prod", "--at", entry["live_from"], "--json", *p)
    assert [e["release"] for e in json.loads(out)] == [prod]  # live until the stop
    code, out, err = run(capsys, "history", "prod", "--at", entry["live_until"], *p)
    assert code == 0 and f"prod was stopped at {entry['live_until']}: release {prod} was taken down" in err
    assert "by dave (incident [42])" in err
    code, out, err = run(capsys, "history", "prod", *p)
    assert "stopped by dave: incident [42]" in out
    assert run(capsys, "audit", "verify", *p)[0] == 0

    # nothing live: nothing to sign, and no key needed
    code, out, err = run(capsys, "release", "stop", "prod", "--json", *p)
    assert code == 0 and json.loads(out)["release"] is None, err
    assert _events(capsys, p) == before + 1

    # a rollback brings the stopped release back, under prod's approvals
    code, out, err = run(capsys, "rollback", "prod", "--key", str(keys.path("carol")), "--json", *p)
    assert code == 0 and json.loads(out)["status"] == "pending" and json.loads(out)["source_release"] == prod, err
    back = json.loads(out)["id"]
    assert run(capsys, "approve", str(back), "--key", str(keys.path("alice")), *p)[0] == 0
    code, out, err = run(capsys, "approve", str(back), "--key", str(keys.path("bob")), "--json", *p)
    assert code == 0 and json.loads(out)["status"] == "live", err
    assert alias_version(mlflow_registry, "prod") == "3"
    code, out, _ = run(capsys, "history", "prod", "--json", *p)
    assert [(e["release"], e["stopped_by"]) for e in json.loads(out)] == [(prod, "dave"), (back, None)]


def test_a_stage_without_approvers_is_stopped_by_any_signer(
    live_in_prod: tuple[list[str], int], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    p, _ = live_in_prod
    code, out, err = run(capsys, "release", "stop", "qa", "--key", str(keys.path("erin")), "--json", *p)
    assert code == 0 and json.loads(out)["by"] == "erin", err
    code, out, _ = run(capsys, "releases", "list", "--stage", "qa", "--json", *p)
    assert [r["status"] for r in json.loads(out)] == ["stopped"]


def test_stopping_an_unknown_stage_names_the_stages(
    live_in_prod: tuple[list[str], int], capsys: pytest.CaptureFixture[str]
) -> None:
    p, _ = live_in_prod
    code, _, err = run(capsys, "release", "stop", "staging", *p)
    assert code == 2 and "'staging' is not declared" in err and "qa, prod" in err


def test_the_dashboard_shows_a_stopped_stage(
    live_in_prod: tuple[list[str], int], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    import httpx

    from conveyor.ui import create_app

    p, prod = live_in_prod
    code, _, err = run(capsys, "release", "stop", "prod", "--key", str(keys.path("alice")), "-m", "<i>x</i>", *p)
    assert code == 0, err

    async def page() -> str:
        transport = httpx.ASGITransport(app=create_app(p[1]))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get("/stages/prod")
            assert answer.status_code == 200
            return answer.text

    text = asyncio.run(page())
    assert f'Stopped: release <a href="/releases/{prod}">{prod}</a>' in text and "by alice" in text
    assert "&lt;i&gt;x&lt;/i&gt;" in text and "<i>x</i>" not in text
