"""The project file: validation errors that name the file, key, bad value and what is accepted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conveyor.config import load_project
from conveyor.config.project import parse_project_file
from conveyor.errors import ConfigError, SecretError

MINIMAL = """
[project]
name = "demo"

[environments.dev]
secrets = "file://secrets/dev.toml"
lake = "file://lake/dev"
"""


STAGE = '[release.prod]\ntarget = "local://8080"\n'
BATCH = "[pipelines.build.score_batch]\n"


def write_project(root: Path, text: str = MINIMAL) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conveyor.toml").write_text(text)
    return root


def test_minimal_project_defaults(tmp_path):
    project = load_project(write_project(tmp_path))
    env = project.environment("dev")
    assert env.compute == "local"
    assert env.state == "dev"
    assert env.registry_uri == f"sqlite:///{tmp_path}/.conveyor/dev/mlflow.db"
    assert project.config.trust.builders == ["ci"]
    assert project.allowed_signers_file == tmp_path / "allowed_signers"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace('name = "demo"', "name = 42"), ["project.name", "42"]),
        (MINIMAL.replace('name = "demo"', 'name = "Bad Name"'), ["project.name", "'Bad Name'", "lowercase"]),
        (MINIMAL + 'compute = "lcoal"\n', ["environments.dev.compute", "'lcoal'", "local, spark"]),
        (MINIMAL + 'colour = "blue"\n', ["environments.dev.colour", "unknown key"]),
        (MINIMAL.replace('lake = "file://lake/dev"', ""), ["environments.dev.lake", "missing"]),
        (MINIMAL + '[release.prod]\ntarget = "oci://r/x"\ntimeout = "soon"\n', ["release.prod.timeout", "'soon'"]),
        (MINIMAL + '[gates]\nmetrics = { r2 = "big" }\n', ["gates.metrics", "'big'"]),
        (
            MINIMAL + '[trust]\nbuilders = ["ci", "*@example.com"]\n',
            ["trust.builders", "'*@example.com'", "plain name"],
        ),
        (MINIMAL + '[trust]\nbuilders = "ci"\n', ["trust.builders", "'ci'", "list"]),
        (MINIMAL + '[trust]\nallowed_signers = " "\n', ["trust.allowed_signers", "must name a file"]),
        (MINIMAL + '[trust]\nsigners = "x"\n', ["trust.signers", "unknown key"]),
        (MINIMAL + f'{STAGE}env = "nope"\n', ["release.prod.env names 'nope'", "declared: dev"]),
        (MINIMAL + f'{STAGE}requires = ["qa"]\n', ["release.prod.requires names 'qa'", "stages: prod"]),
        (MINIMAL + f'{STAGE}approvers = ["a"]\nmin_approvals = 2\n', ["min_approvals = 2 but only 1 approvers"]),
        (MINIMAL + STAGE.replace("8080", "99999"), ["release.prod.target", "99999", "1-65535"]),
        (
            MINIMAL + STAGE.replace("local://8080", "batch://nope/in.csv?output=out"),
            ["release.prod.target scores in environment 'nope'"],
        ),
        (MINIMAL + f'{BATCH}input = "../in.csv"\noutput = "o"\n', ["score_batch.input", "'../in.csv'", "no '..'"]),
        (MINIMAL + f'{BATCH}input = "/etc/passwd"\noutput = "o"\n', ["score_batch.input", "relative"]),
        (MINIMAL + f'{BATCH}input = "in.csv"\noutput = "in.csv"\n', ["output must differ from input"]),
    ],
)
def test_type_errors_name_file_key_value_and_accepted(tmp_path, text, expected):
    write_project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "conveyor.toml") in message
    for part in expected:
        assert part in message


def test_gate_rules_take_numbers_as_python_writes_them(tmp_path):
    write_project(tmp_path, MINIMAL + '[gates]\nmetrics = { r2 = ">= 1e-3", mae = "<= 1.1E+0 * champion" }\n')
    assert load_project(tmp_path).config.gates.metrics["r2"] == ">= 1e-3"


def test_toml_syntax_error_is_reported(tmp_path):
    write_project(tmp_path, "[project\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_project_file(tmp_path / "conveyor.toml")


def test_unknown_and_misspelled_environment(tmp_path):
    project = load_project(write_project(tmp_path))
    with pytest.raises(ConfigError, match=r"'dve' is not declared.*Did you mean 'dev'") as info:
        project.environment("dve")
    assert "Declared environments: dev" in str(info.value)
    with pytest.raises(ConfigError, match="no environment chosen"):
        project.environment(None)


def test_env_variable_selects_environment(tmp_path, monkeypatch):
    project = load_project(write_project(tmp_path))
    monkeypatch.setenv("CONVEYOR_ENV", "dev")
    assert project.environment().name == "dev"


def test_no_project_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no conveyor\.toml"):
        load_project(tmp_path)


def test_secret_reference_resolves_through_the_store(tmp_path):
    text = MINIMAL.replace('lake = "file://lake/dev"', 'lake = "${secret:datalake-fqdn}"')
    root = write_project(tmp_path, text)
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "dev.toml").write_text('datalake-fqdn = "file:///data/dev"\n')
    os.chmod(secrets / "dev.toml", 0o600)
    env = load_project(root).environment("dev")
    assert env.lake_url == "file:///data/dev"
    assert env.required_secrets() == ["datalake-fqdn"]


def test_missing_secret_names_key_and_store_not_values(tmp_path):
    text = MINIMAL.replace('lake = "file://lake/dev"', 'lake = "${secret:datalake-fqdn}"')
    root = write_project(tmp_path, text)
    (root / "secrets").mkdir()
    (root / "secrets" / "dev.toml").write_text('other = "hunter2-value"\n')
    os.chmod(root / "secrets" / "dev.toml", 0o600)
    with pytest.raises(SecretError) as info:
        _ = load_project(root).environment("dev").lake_url
    assert "'datalake-fqdn'" in str(info.value) and "secrets/dev.toml" in str(info.value)
    assert "hunter2-value" not in str(info.value)


def test_world_readable_secret_file_is_refused_with_chmod(tmp_path):
    text = MINIMAL.replace('lake = "file://lake/dev"', 'lake = "${secret:datalake-fqdn}"')
    root = write_project(tmp_path, text)
    (root / "secrets").mkdir()
    path = root / "secrets" / "dev.toml"
    path.write_text('datalake-fqdn = "file:///x"\n')
    os.chmod(path, 0o644)
    with pytest.raises(SecretError) as info:
        _ = load_project(root).environment("dev").lake_url
    assert f"chmod 600 {path}" in str(info.value)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # conveyor never changes it behind the user's back


def test_unknown_secret_scheme(tmp_path):
    root = write_project(tmp_path, MINIMAL.replace("file://secrets/dev.toml", "keepass://vault.kdbx"))
    with pytest.raises(SecretError, match=r"unknown secret store scheme 'keepass://'.*") as info:
        _ = load_project(root).environment("dev").secrets
    assert "file://" in str(info.value) and "vault://" in str(info.value)


def test_ci_can_hand_over_its_own_secret_store(tmp_path, monkeypatch):
    text = MINIMAL.replace('lake = "file://lake/dev"', 'lake = "${secret:datalake-fqdn}"')
    env = load_project(write_project(tmp_path, text)).environment("dev")
    monkeypatch.setenv("CONVEYOR_SECRETS_DEV", "env://CI_DEV_")
    monkeypatch.setenv("CI_DEV_DATALAKE_FQDN", "file:///ci/lake")
    assert env.secrets_url == "env://CI_DEV_"
    assert env.lake_url == "file:///ci/lake"
