"""The release commands as a person or a pipeline runs them: --json, --as, exit codes, help that teaches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import build

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.release import Releases

pytestmark = pytest.mark.services


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_release_flow_through_the_cli(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    desk = Releases(load_project(root))
    path = build(desk, "cli-flow", model_version="4")
    p = ["-p", str(root)]

    monkeypatch.setenv("GITHUB_ACTOR", "carol")
    code, out, _ = run(capsys, "release", "create", str(path), "--to", "qa", "--json", *p)
    assert code == 0, out
    qa = json.loads(out)
    assert (qa["status"], qa["requested_by"], qa["model"]["version"]) == ("live", "carol", "4")

    code, out, _ = run(capsys, "release", "promote", str(qa["id"]), "--to", "prod", "--json", *p)
    prod = json.loads(out)
    assert (code, prod["status"], prod["min_approvals"]) == (0, "pending", 2)

    code, _, err = run(capsys, "approve", str(prod["id"]), *p)
    assert code == 1 and "carol requested this release" not in err and "not an approver" in err
    code, _, err = run(capsys, "approve", str(prod["id"]), "--as", "carol", *p)
    assert code == 1 and "carol is not an approver of prod" in err

    assert run(capsys, "approve", str(prod["id"]), "--as", "alice", "-m", "fine", *p)[0] == 0
    code, out, _ = run(capsys, "approve", str(prod["id"]), "--as", "bob", "--json", *p)
    assert code == 0 and json.loads(out)["status"] == "live"

    code, out, _ = run(capsys, "history", "prod", "--json", *p)
    (entry,) = json.loads(out)
    assert (entry["release"], entry["requested_by"], entry["approved_by"]) == (prod["id"], "carol", ["alice", "bob"])
    code, out, _ = run(capsys, "history", "prod", *p)
    assert code == 0 and "alice" in out and "bob" in out

    code, out, _ = run(capsys, "releases", "list", "--json", *p)
    assert [r["id"] for r in json.loads(out)] == [prod["id"], qa["id"]]
    code, out, _ = run(capsys, "releases", "show", str(prod["id"]), *p)
    assert code == 0
    code, out, _ = run(capsys, "audit", "list", "--release", str(prod["id"]), "--json", *p)
    assert {e["actor"] for e in json.loads(out)} >= {"carol", "alice", "bob"}
    assert run(capsys, "audit", "verify", *p)[0] == 0

    code, _, err = run(capsys, "release", "create", str(path), "--to", "staging", *p)
    assert code == 2 and "stage 'staging' is not declared" in err
    code, _, err = run(capsys, "history", "prod", "--at", "yesterday", *p)
    assert code == 2 and "not understood" in err
    code, _, err = run(capsys, "releases", "show", "999", *p)
    assert code == 2 and "release 999 does not exist" in err


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "release", "--help")
    assert code == 0
    for words in ("oci://HOST/REPO", "local://PORT", "min_approvals", "alias", "ledger"):
        assert words in out
    code, out, _ = run(capsys, "approve", "--help")
    assert code == 0 and "--as" in out and "requester" in out
    code, out, _ = run(capsys, "rollback", "--help")
    assert code == 0 and "--to" in out
