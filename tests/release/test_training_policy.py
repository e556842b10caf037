"""A model trained without the sandbox, or from uncommitted changes, reaches no guarded stage unless the
recorded policy says so: the facts come from the signed provenance, not from a tag anyone can set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from release_support import Keys, run, write_build

from conveyor.trust.dsse import Envelope

pytestmark = pytest.mark.services


@pytest.mark.parametrize(
    ("tags", "fact", "setting"),
    [
        ({"training_sandbox": "none", "git_dirty": "false"}, "trained without a sandbox", "allow_unsandboxed"),
        ({"training_sandbox": "bwrap", "git_dirty": "true"}, "uncommitted changes", "allow_dirty"),
    ],
    ids=["unsandboxed", "dirty"],
)
def test_a_guarded_stage_refuses_what_the_provenance_says_until_the_policy_allows_it(
    make_project: Callable[..., Path],
    keys: Keys,
    capsys: pytest.CaptureFixture[str],
    tags: dict[str, str],
    fact: str,
    setting: str,
) -> None:
    root = make_project(min_approvals=1)
    p = ["-p", str(root)]
    carol, ci = str(keys.path("carol")), str(keys.path("ci"))
    built = write_build(root, f"trained-{setting}", model_tags=tags)
    signed = Envelope.load(built.parent / "attestations" / "provenance.dsse.json").statement().predicate
    training = signed["buildDefinition"]["externalParameters"]["training"]
    assert training == {"sandbox": tags["training_sandbox"], "gitDirty": tags["git_dirty"] == "true"}
    code, out, err = run(capsys, "release", "create", str(built), "--to", "qa", "--key", carol, "--json", *p)
    assert code == 0, err  # qa has no approvers
    qa = json.loads(out)["id"]
    code, _, err = run(capsys, "release", "promote", str(qa), "--to", "prod", "--key", carol, *p)
    text = " ".join(err.split())
    assert code == 1 and fact in text and f"{setting} = true in [release.prod]" in text, text

    toml = root / "conveyor.toml"
    toml.write_text(toml.read_text().replace("[release.prod]\n", f"[release.prod]\n{setting} = true\n"))
    code, _, err = run(capsys, "release", "promote", str(qa), "--to", "prod", "--key", carol, *p)
    assert code != 0  # an edited project file is not the policy in force
    code, out, err = run(capsys, "release", "policy", "propose", "--key", ci, "--json", *p)
    assert code == 0, err
    (proposal,) = json.loads(out)["proposals"]
    number = str(proposal["proposal"])
    code, out, err = run(capsys, "release", "policy", "approve", number, "--key", str(keys.path("alice")), "--json", *p)
    assert code == 0 and json.loads(out)["same"] is True, err  # prod's one approval decides the change
    code, out, err = run(capsys, "release", "promote", str(qa), "--to", "prod", "--key", carol, "--json", *p)
    assert code == 0, err
    assert json.loads(out)["status"] == "pending"
