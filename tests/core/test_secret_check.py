"""`conveyor secrets check` is one function of the config room, which the CLI and the demo both call."""

from __future__ import annotations

import shutil

import pytest

from conveyor.config import check_secrets, load_project
from conveyor.errors import CheckFailed


def test_each_environment_needs_its_references_and_the_gate_store_the_eval_data(census_project):
    project = load_project(census_project)
    dev, stage = check_secrets(project, "dev"), check_secrets(project, "stage")
    assert dev.ok and stage.ok
    assert set(dev.needed) == {"alg-state", "created-by", "datalake-fqdn"}
    # The sealed set's location is in no environment's store, only in the gate step's own.
    assert set(stage.needed) == {"alg-state", "created-by", "datalake-fqdn"}
    gates = check_secrets(project, "gates")
    assert gates.ok and gates.needed == ("eval-data-url",)
    assert gates.store == project.gates.secrets.url != stage.store
    assert stage.to_dict() == {
        "environment": "stage",
        "store": project.environment("stage").secrets.url,
        "needed": list(stage.needed),
        "missing": [],
    }
    stage.require()  # nothing missing: no error


def test_a_missing_key_is_named_with_the_fix(census_project, tmp_path):
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor", ".git"))
    text = (copy / "conveyor.toml").read_text()
    (copy / "conveyor.toml").write_text(text.replace('state = "${secret:alg-state}"', 'state = "${secret:nope}"', 1))
    result = check_secrets(load_project(copy), "dev")
    assert result.missing == ("nope",) and not result.ok
    with pytest.raises(CheckFailed) as failed:
        result.require()
    assert failed.value.exit_code == 1
    assert "nope" in failed.value.message and "conveyor secrets set KEY --env dev" in (failed.value.hint or "")
