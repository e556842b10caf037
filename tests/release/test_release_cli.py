"""The release commands as a person or a pipeline runs them: keys, --as only as a check, --json, exit codes, help.

Who acts is whoever's key signs: an approval under another name, with no key, or with a key outside
allowed_signers is refused with exit 2 and the command that fixes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import Keys, build, run

from conveyor.config import load_project
from conveyor.release.releases import Releases

pytestmark = pytest.mark.services


@pytest.fixture
def pending(
    make_project: Callable[..., Path], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], dict, dict]:
    """A project with a build live in qa and promoted to prod by carol (2 approvals needed), through the CLI."""
    root = make_project()
    path = build(Releases(load_project(root)), "cli-flow", model_version="4")
    p = ["-p", str(root)]
    code, out, err = run(
        capsys, "release", "create", str(path), "--to", "qa", "--key", str(keys.path("carol")), "--json", *p
    )
    assert code == 0, err
    qa = json.loads(out)
    code, out, err = run(
        capsys, "release", "promote", str(qa["id"]), "--to", "prod", "--key", str(keys.path("carol")), "--json", *p
    )
    assert code == 0, err
    return p, qa, json.loads(out)


def test_release_flow_through_the_cli(
    pending: tuple[list[str], dict, dict],
    keys: Keys,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, qa, prod = pending
    assert (qa["status"], qa["requested_by"], qa["model"]["version"]) == ("live", "carol", "4")
    assert qa["verification"] == {"ok": True, "problem": None} and len(qa["attestations"]) == 3
    assert (prod["status"], prod["min_approvals"], prod["policy"]["min_approvals"]) == ("pending", 2, 2)

    code, _, err = run(capsys, "approve", str(prod["id"]), "--key", str(keys.path("carol")), *p)
    assert code == 1 and "carol is not an approver of prod" in err

    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", keys.path("alice").read_text())  # the key text, as a CI secret
    code, out, err = run(capsys, "approve", str(prod["id"]), "-m", "fine", "--as", "alice", *p)
    assert code == 0, err
    assert "BEGIN OPENSSH PRIVATE KEY" not in out + err
    monkeypatch.delenv("CONVEYOR_SIGNING_KEY")
    code, out, err = run(capsys, "approve", str(prod["id"]), "--key", str(keys.path("bob")), "--json", *p)
    assert code == 0, err
    assert json.loads(out)["status"] == "live"

    code, out, _ = run(capsys, "history", "prod", "--json", *p)
    (entry,) = json.loads(out)
    assert (entry["release"], entry["requested_by"], entry["approved_by"]) == (prod["id"], "carol", ["alice", "bob"])
    assert {s["by"] for s in entry["signers"]} == {"carol", "alice", "bob"} and len(entry["attestations"]) == 3
    code, out, err = run(capsys, "history", "prod", *p)
    assert code == 0 and "alice" in out and "bob" in out and "every event verified" in err

    code, out, _ = run(capsys, "releases", "list", "--json", *p)
    assert [r["id"] for r in json.loads(out)] == [prod["id"], qa["id"]]
    code, out, _ = run(capsys, "releases", "show", str(prod["id"]), *p)
    assert code == 0 and "approved by alice" in out and "attestation sha256:" in out and "every event verified" in out
    code, out, _ = run(capsys, "audit", "list", "--release", str(prod["id"]), "--json", *p)
    assert {e["actor"] for e in json.loads(out)} >= {"carol", "alice", "bob"}
    assert run(capsys, "audit", "verify", *p)[0] == 0
    # one policy, one digest, one name: what audit verify and releases show call "policy" is the same digest
    code, out, _ = run(capsys, "audit", "verify", "--json", *p)
    policy = json.loads(out)["policy"]
    code, out, _ = run(capsys, "releases", "show", str(prod["id"]), "--json", *p)
    assert json.loads(out)["policy_set"] == policy and json.loads(out)["policy_digest"] != policy
    short = policy.removeprefix("sha256:")[:12]
    assert f"policy {short}" in run(capsys, "releases", "show", str(prod["id"]), *p)[1]
    assert f"policy {short}" in run(capsys, "audit", "verify", *p)[2]
    code, out, _ = run(capsys, "release", "policy", "show", "--json", *p)
    assert code == 0 and json.loads(out)["same"] is True

    code, _, err = run(capsys, "release", "create", "abcdef12", "--to", "staging", "--key", str(keys.path("carol")), *p)
    assert code == 2
    code, _, err = run(capsys, "history", "prod", "--at", "yesterday", *p)
    assert code == 2 and "not understood" in err
    code, _, err = run(capsys, "releases", "show", "999", *p)
    assert code == 2 and "release 999 does not exist" in err


def test_an_approval_under_another_name_is_refused(
    pending: tuple[list[str], dict, dict], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old way in: `approve --as alice` by the requester. --as is only a check now, and names no one."""
    p, _, prod = pending
    code, _, err = run(capsys, "approve", str(prod["id"]), "--as", "alice", "--key", str(keys.path("carol")), *p)
    assert code == 2
    assert "--as alice does not match the signing key, which is carol's" in err
    code, out, _ = run(capsys, "releases", "show", str(prod["id"]), "--json", *p)
    assert json.loads(out)["approvals"] == [] and json.loads(out)["status"] == "pending"


def test_an_approval_with_no_key_is_refused_with_the_fix(
    pending: tuple[list[str], dict, dict],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    p, _, prod = pending
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/conveyor
    code, _, err = run(capsys, "approve", str(prod["id"]), *p)
    assert code == 2
    assert "no signing key" in err and "ssh-keygen -t ed25519" in err and "CONVEYOR_SIGNING_KEY" in err


def test_an_approval_with_an_unknown_key_is_refused_with_the_fix(
    pending: tuple[list[str], dict, dict], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    p, _, prod = pending
    code, _, err = run(capsys, "approve", str(prod["id"]), "--key", str(keys.path("outsider")), *p)
    assert code == 1  # a refused signature
    assert "is not in" in err and "allowed_signers" in err and keys.outsider.public.openssh() in err


def test_a_key_added_to_allowed_signers_counts_only_once_the_policy_is_approved(
    pending: tuple[list[str], dict, dict], keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding `alice <another key>` to allowed_signers (a copy, or an uncommitted edit) makes no one alice: the
    ledger holds the keys of the policy in force."""
    p, _, prod = pending
    root = Path(p[1])
    signers = root / "allowed_signers"
    signers.write_text(signers.read_text() + f"alice {keys.outsider.public.openssh()}\n")
    code, _, err = run(capsys, "approve", str(prod["id"]), "--key", str(keys.path("outsider")), *p)
    assert code == 1 and "not in the policy the ledger holds in force" in err
    assert "conveyor release policy propose" in err


def test_the_default_key_is_ssh_conveyor(
    pending: tuple[list[str], dict, dict],
    keys: Keys,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With no --key, $CONVEYOR_SIGNING_KEY or git signing key, ~/.ssh/conveyor signs, as the README sets it up."""
    p, _, prod = pending
    monkeypatch.delenv("CONVEYOR_SIGNING_KEY", raising=False)
    (tmp_path / ".ssh").mkdir()
    default = tmp_path / ".ssh" / "conveyor"
    default.write_bytes(keys.path("alice").read_bytes())
    default.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = run(capsys, "approve", str(prod["id"]), "--json", *p)
    assert code == 0, err
    assert json.loads(out)["approved_by"] == ["alice"], out


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "release", "--help")
    assert code == 0
    for words in (
        "oci://HOST[:PORT]/REPO",
        "local://PORT",
        "min_approvals",
        "alias",
        "allowed_signers",
        "CONVEYOR_SIGNING_KEY",
        "ssh-keygen -t ed25519",
        "break_glass",
        "attestations",
    ):
        assert words in out, words
    code, out, _ = run(capsys, "approve", "--help")
    assert code == 0 and "--key" in out and "--as" in out and "requester" in out and "signs" in out
    code, out, _ = run(capsys, "rollback", "--help")
    assert code == 0 and "--to" in out and "--break-glass" in out and "approvals" in out
    code, out, _ = run(capsys, "release", "policy", "--help")
    assert code == 0 and "propose" in out and "approve" in out
