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
        "weak": [],
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


def test_every_weak_value_of_the_store_is_named_used_or_not(tmp_path):
    """A value too short (or a number, or a common word) cannot be masked: it is refused wherever the store is
    read, so the check names it first, by key and reason, never by value."""
    from conveyor.config.secret_check import weak_values
    from conveyor.secrets import open_store

    store_file = tmp_path / "dev.toml"
    store_file.write_text('unused-pin = "4821"\nport = "54321987"\ngood = "Zq7-long-enough-77"\nword = "password"\n')
    store_file.chmod(0o600)
    store = open_store(f"file://{store_file}", tmp_path)
    found = dict(weak_values(store, store.names()))
    assert set(found) == {"unused-pin", "port", "word"}
    assert "4 characters long" in found["unused-pin"] and "number" in found["port"] and "common" in found["word"]

    from conveyor.examples.scaffold import init_project

    # a project of its own: its secret files live outside it, and the shared census project's must stay clean
    copy = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=60).root
    dev_store = load_project(copy).environment("dev").secrets
    dev_store.set("spare-pin", "Zq7-long-enough-77")  # through conveyor: a weak value cannot even be set
    with open(dev_store.path, "a") as handle:  # written by hand
        handle.write('spare-pin-2 = "1234"\n')
    result = check_secrets(load_project(copy), "dev")
    # alg-state = "dev" and created-by are published by design (tags): exempt
    assert not result.ok and result.missing == () and [key for key, _ in result.weak] == ["spare-pin-2"]
    with pytest.raises(CheckFailed) as failed:
        result.require()
    assert "'spare-pin-2'" in failed.value.message and "1234" not in failed.value.message + str(result.to_dict())
