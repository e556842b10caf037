"""The CLI as a person meets it: exit codes, one-paragraph errors, --json, secrets never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_teaches(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("init", "train", "demo", "models", "secrets", "lake"):
        assert command in out


def test_missing_environment_is_usage_error(capsys, census_project, monkeypatch):
    monkeypatch.delenv("CONVEYOR_ENV", raising=False)
    code, _, err = run(capsys, "secrets", "list", "-p", str(census_project))
    assert code == 2
    assert "no environment chosen" in err and "dev, stage, prod" in err


def test_conveyor_env_is_the_default_of_every_env_option_and_the_option_wins(capsys, census_project, monkeypatch):
    """`--env` and `$CONVEYOR_ENV` are read in one place: commands that hand the name on (a pipeline's `env`
    parameter) see the same choice as commands that open the environment."""
    monkeypatch.setenv("CONVEYOR_ENV", "dev")
    for given, chosen in (([], "dev"), (["--env", "stage"], "stage")):
        code, out, err = run(
            capsys, "pipeline", "run", "build", "--step", "secrets", "--json", "-p", str(census_project), *given
        )
        assert code == 0, err
        state = json.loads(out)
        assert state["parameters"]["env"] == chosen
        assert state["steps"][0]["command"] == ["conveyor", "secrets", "check", "--env", chosen]
    monkeypatch.setenv("CONVEYOR_ENV", "prd")
    code, _, err = run(capsys, "secrets", "list", "-p", str(census_project))
    assert code == 2 and "'prd' is not declared" in err


def test_a_listing_is_json_or_a_message_when_empty_or_a_table(capsys, tmp_path):
    """Every listing command answers the same way: --json on stdout; nothing to list, a message on stderr and
    stdout left empty; else a table on stdout."""
    from conveyor.examples.scaffold import init_project

    # a project of its own: the shared census project gains models as other tests train in it
    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    p = ["-p", str(root), "--env", "dev"]
    code, out, err = run(capsys, "models", "list", *p)
    assert code == 0 and out == "" and "no models registered in dev" in err
    code, out, _ = run(capsys, "models", "list", *p, "--json")
    assert code == 0 and json.loads(out) == []
    code, out, err = run(capsys, "secrets", "list", *p)
    names = json.loads(run(capsys, "secrets", "list", *p, "--json")[1])["names"]
    assert code == 0 and names and all(name in out for name in names) and "secrets in" in out and err == ""


def test_misspelled_environment(capsys, census_project):
    code, _, err = run(capsys, "secrets", "list", "-p", str(census_project), "--env", "prd")
    assert code == 2
    assert "'prd' is not declared" in err and "Did you mean 'prod'" in err


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["models", "list", "--env", "[/]"], "environment '[/]' is not declared"),
        (["models", "show", "[/x]", "--env", "dev"], "model reference '[/x]' is not understood"),
        (["lake", "ls", "[red]x[/]", "--env", "dev"], "'[red]x[/]' does not exist in the dev lake"),
    ],
)
def test_user_text_in_an_error_is_shown_as_typed_not_as_markup(capsys, census_project, argv, shown):
    assert main([*argv, "-p", str(census_project)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert shown in err and "Traceback" not in err


def test_secrets_list_shows_names_only(capsys, census_project):
    code, out, _ = run(capsys, "secrets", "list", "-p", str(census_project), "--env", "stage", "--json")
    assert code == 0
    data = json.loads(out)
    assert "datalake-fqdn" in data["names"]
    assert "eval-data-url" not in data["names"]  # the sealed set is named by the gate store only
    assert "file://" not in json.dumps(data["names"])


def test_secrets_check_reports_missing(capsys, census_project, tmp_path):
    project_file = (census_project / "conveyor.toml").read_text()
    copy = tmp_path / "p"
    copy.mkdir()
    (copy / "conveyor.toml").write_text(
        project_file.replace('state = "${secret:alg-state}"', 'state = "${secret:nope}"', 1)
    )
    code, _, err = run(capsys, "secrets", "check", "-p", str(copy), "--env", "dev")
    assert code == 1
    assert "nope" in err and "conveyor secrets set KEY --env dev" in err
    code, _, _ = run(capsys, "secrets", "check", "-p", str(census_project), "--env", "dev")
    assert code == 0


def test_secrets_set_from_stdin_is_private_and_masked(census_project, tmp_path):
    secret_dir = tmp_path / "secrets"
    project_file = (census_project / "conveyor.toml").read_text()
    dev_store = next(line for line in project_file.splitlines() if line.startswith("secrets = "))
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "conveyor.toml").write_text(project_file.replace(dev_store, f'secrets = "file://{secret_dir}/dev.toml"', 1))
    env = {**os.environ, "CONVEYOR_ENV": "dev"}
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "secrets", "set", "api-key", "--stdin", "-p", str(proj)],
        input="very-secret-api-key\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "very-secret-api-key" not in done.stdout + done.stderr
    store = secret_dir / "dev.toml"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert 'api-key = "very-secret-api-key"' in store.read_text()


def test_world_readable_secret_file_exit_2(capsys, census_project, tmp_path):
    from conveyor.config import load_project

    path = Path(load_project(census_project).environment("prod").secrets.path)
    os.chmod(path, 0o644)
    try:
        code, _, err = run(capsys, "secrets", "list", "-p", str(census_project), "--env", "prod")
    finally:
        os.chmod(path, 0o600)
    assert code == 2
    assert "chmod 600" in err and str(path) in err.replace("\n", "")


def test_bad_project_file_exit_2(capsys, tmp_path):
    (tmp_path / "conveyor.toml").write_text(
        '[project]\nname = "x"\n[environments.dev]\nsecrets = 3\nlake = "file://l"\n'
    )
    code, _, err = run(capsys, "models", "list", "-p", str(tmp_path), "--env", "dev")
    assert code == 2
    assert "environments.dev.secrets = 3" in err and "conveyor.toml" in err


def test_init_refuses_non_empty_folder(capsys, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    code, _, err = run(capsys, "init", str(tmp_path / "x"))
    assert code == 2 and "not empty" in err
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_init_makes_git_repo_that_ignores_local_stores(census_project):
    ignored = subprocess.run(
        ["git", "check-ignore", ".conveyor/dev/mlflow.db", "results/junit.xml", "secrets/dev.toml"],
        cwd=census_project,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [".conveyor/dev/mlflow.db", "results/junit.xml", "secrets/dev.toml"]
    tracked = subprocess.run(["git", "ls-files"], cwd=census_project, capture_output=True, text=True).stdout.split()
    assert {"conveyor.toml", "train.py", "score.py", "inference/model.py", "tests/test_inference.py"} <= set(tracked)
    assert not any(name.endswith(".toml") and "secret" in name for name in tracked)


@pytest.mark.slow
def test_models_list_and_show(capsys, trained_project):
    code, out, _ = run(capsys, "models", "list", "-p", str(trained_project), "--env", "dev", "--json")
    assert code == 0
    versions = json.loads(out)
    assert versions[0]["name"] == "worst_regression" and versions[0]["tags"]["state"] == "dev"
    code, out, _ = run(capsys, "models", "show", "worst_regression/1", "-p", str(trained_project), "-e", "dev")
    assert code == 0 and "metric.mae" in out and "mae =" in out
    code, _, err = run(capsys, "models", "show", "worst_regression/99", "-p", str(trained_project), "-e", "dev")
    assert code == 2 and "'worst_regression/99' is not in the dev registry" in err
    code, _, err = run(capsys, "models", "show", "no such!", "-p", str(trained_project), "-e", "dev")
    assert code == 2 and "not understood" in err


@pytest.mark.parametrize("argv", [["serve", "--bogus"], ["models", "lst"], ["train", "--env"]])
def test_usage_errors_exit_2_without_a_traceback(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err and "Error" in err


def test_init_writes_portable_paths(capsys, tmp_path, monkeypatch):
    """conveyor.toml is committed and shared: it names the home folder as ~, not as whoever ran init."""
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    code, _, err = run(capsys, "init", str(tmp_path / "shared"), "--rows", "60", "--no-git")
    assert code == 0, err
    text = (tmp_path / "shared" / "conveyor.toml").read_text()
    assert 'secrets = "file://~/.conveyor/secrets/shared/dev.toml"' in text
    assert str(home) not in text
    assert (home / ".conveyor" / "secrets" / "shared" / "dev.toml").is_file()
    code, _, err = run(capsys, "secrets", "check", "-p", str(tmp_path / "shared"), "--env", "stage")
    assert code == 0, err


def test_under_json_an_error_is_a_json_document_on_stdout_too(capsys, census_project):
    assert main(["pipeline", "show", "nope", "--json"]) == 2
    out = capsys.readouterr().out
    assert json.loads(out)["error"] == {
        "message": "there is no pipeline 'nope'",
        "hint": "Pipelines: build, release.",
        "exit_code": 2,
    }
    assert main(["models", "show", "worst_regression/99", "--env", "dev", "-p", str(census_project), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["exit_code"] == 2
    assert main(["models", "show", "worst_regression/99", "--env", "dev", "-p", str(census_project)]) == 2
    assert capsys.readouterr().out == ""  # without --json, stdout stays empty


def _conveyor(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | env
    cli = Path(sys.executable).with_name("conveyor")
    return subprocess.run([str(cli), *argv], capture_output=True, text=True, env=environ, timeout=120)


def test_mlflow_tracking_uri_set_but_ignored_is_said_once_without_its_value(census_project):
    argv = ("models", "list", "-p", str(census_project), "--env", "dev", "--json")
    done = _conveyor(*argv, MLFLOW_TRACKING_URI="https://user:hunter2-pass@mlflow.example/")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("MLFLOW_TRACKING_URI is set but ignored") == 1
    assert "[environments.dev]" in done.stderr and "${env:MLFLOW_TRACKING_URI}" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    plain = _conveyor(*argv)
    assert plain.returncode == 0 and "MLFLOW_TRACKING_URI" not in plain.stderr


def test_a_missing_secret_names_the_environment_to_set_it_in(capsys, census_project, tmp_path):
    project_file = (census_project / "conveyor.toml").read_text()
    copy = tmp_path / "p"
    copy.mkdir()
    (copy / "conveyor.toml").write_text(project_file.replace("${secret:datalake-fqdn}", "${secret:lake-nope}"))
    code, _, err = run(capsys, "lake", "ls", "-p", str(copy), "--env", "stage")
    assert code == 2
    err = " ".join(err.split())
    assert "'lake-nope' is missing" in err and "conveyor secrets set lake-nope --env stage" in err
    assert "<environment>" not in err


def test_models_list_fits_80_columns_without_breaking_names(trained_project):
    done = _conveyor("models", "list", "-p", str(trained_project), "--env", "dev", COLUMNS="80")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    assert "worst_regression/1" in done.stdout, done.stdout
    assert len([line for line in lines if line.strip()]) == 4, done.stdout  # title, header, rule, one unbroken row


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("conveyor rel", "1", {"release", "releases"}),
        ("conveyor release cr", "2", {"create"}),
        ("conveyor train --e", "2", {"--env"}),
    ],
)
def test_shell_completion_completes_commands_subcommands_and_options(words, cword, expected):
    done = _conveyor(_CONVEYOR_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == expected


def test_completion_can_be_shown_for_bash():
    done = _conveyor("--show-completion", "bash")
    assert done.returncode == 0 and "_conveyor_completion" in done.stdout and "complete" in done.stdout


def test_completion_for_a_named_shell_is_shown_whatever_shell_runs_it():
    """`RUN conveyor --show-completion bash > ...` in a Dockerfile runs under sh: the named shell is the one
    written (typer's flag detected the parent shell and refused sh); `--show-completion=zsh` too."""
    cli = Path(sys.executable).with_name("conveyor")
    for argument, marker in (("--show-completion bash", "_conveyor_completion"), ("--show-completion=zsh", "#compdef")):
        done = subprocess.run(
            ["sh", "-c", f"'{cli}' {argument}; exit $?"], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0 and marker in done.stdout, done.stderr


def test_a_project_file_that_is_not_utf8_is_a_named_config_error(tmp_path):
    (tmp_path / "conveyor.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    done = _conveyor("models", "list", "-p", str(tmp_path), "--env", "dev", "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = json.loads(done.stdout)["error"]
    assert "conveyor.toml is not UTF-8" in error["message"] and "UTF-8" in error["hint"]


def test_a_corrupt_ledger_is_a_named_error_not_a_traceback(census_project, tmp_path):
    import shutil

    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor"))
    (copy / ".conveyor").mkdir()
    (copy / ".conveyor" / "ledger.db").write_bytes(os.urandom(8192))
    done = _conveyor("releases", "list", "-p", str(copy), "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "ledger.db cannot be read as a database" in error["message"] and "never replaces" in error["hint"]


def test_init_and_ci_render_say_what_they_wrote_as_json(tmp_path, capsys):
    code, out, err = run(
        capsys,
        "init",
        str(tmp_path / "p"),
        "--secrets-dir",
        str(tmp_path / "s"),
        "--lakes-dir",
        str(tmp_path / "l"),
        "--rows",
        "60",
        "--no-git",
        "--json",
    )
    assert code == 0, err
    made = json.loads(out)
    assert made["root"] == str(tmp_path / "p") and set(made["lakes"]) == {"dev", "stage", "prod"}
    assert all(Path(path).is_file() for path in made["created_secrets"])
    code, out, err = run(capsys, "ci", "render", "github", "-p", made["root"], "--json")
    assert code == 0, err
    written = json.loads(out)["written"]
    assert [Path(path).name for path in written][1:] == ["conveyor-build.yml", "conveyor-release.yml"]
    assert Path(written[0]).suffix == ".whl"  # this conveyor, pinned, for the runner to install
    assert all(Path(path).is_file() for path in written)


def test_verify_of_something_that_is_no_build_is_a_usage_error(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a build")
    for target in (notes, tmp_path):
        code, _, err = run(capsys, "verify", str(target))
        assert code == 2 and "is neither a build, a package folder nor an image archive" in err
        assert "conveyor verify 3f9a2c" in err
