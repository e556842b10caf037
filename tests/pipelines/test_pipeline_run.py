"""`conveyor pipeline run`: the build pipeline on stage, then the release pipeline, exactly as CI runs them."""

from __future__ import annotations

import json

import pytest

from conveyor.cli.main import main
from conveyor.examples.scaffold import init_project

pytestmark = [pytest.mark.slow, pytest.mark.container]


def test_build_then_release_pipeline(tmp_path, capsys, monkeypatch):
    import socket

    ports = {}
    for stage in ("qa", "prod"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[stage] = sock.getsockname()[1]
    root = init_project(
        tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=600, release_ports=ports
    ).root
    from conveyor.trust.keys import make_key

    signers = root / "allowed_signers"
    for name in ("ci", "alice", "bob"):  # the builder (CI's secret key) and prod's approvers
        key = make_key(tmp_path / "keys" / name, name)
        signers.write_text(signers.read_text() + f"{name} {key.public.openssh()}\n")
    import subprocess

    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    with (root / "conveyor.toml").open("a") as toml:  # the build pipeline ends by scoring stage's census file
        toml.write('\n[pipelines.build.score_batch]\ninput = "AdultCensusIncome.csv"\noutput = "scored/census"\n')
    subprocess.run([*git, "commit", "-qm", "keys; batch step", "allowed_signers", "conveyor.toml"], check=True)
    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", str(tmp_path / "keys" / "ci"))
    assert main(["pipeline", "run", "build", "--env", "stage", "-p", str(root)]) == 0
    state = json.loads((root / "results" / "pipeline-build.json").read_text())
    assert [s["name"] for s in state["steps"]] == [
        "secrets",
        "gate-secrets",
        "train",
        "build",
        "test",
        "gate",
        "verify",
        "score-batch",
    ]
    assert all(s["exit_code"] == 0 for s in state["steps"])
    scored = state["outputs"]["score-batch"]
    assert scored["rows"] == 600 and scored["env"] == "stage" and scored["engine"] == "local"
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "l" / "stage" / "scored" / "census").num_rows == 600
    assert scored["drift"] == {"available": True, "report": "scored/census.drift.json"}  # the training data itself
    report = json.loads((tmp_path / "l" / "stage" / "scored" / "census.drift.json").read_text())
    assert report["records"] == 600 and all(f["psi"] < 0.1 for f in report["features"].values())
    build = state["outputs"]["build"]
    assert state["steps"][3]["command"][:6] == ["conveyor", "build", "--env", "stage", "--model", "worst_regression/1"]
    assert (root / "results" / "junit.xml").exists() and (root / "results" / "coverage.xml").exists()

    try:
        assert main(["pipeline", "run", "release", "--build", build["path"], "-p", str(root)]) == 0
        release = json.loads((root / "results" / "pipeline-release.json").read_text())
        assert release["outputs"]["qa"]["status"] == "live"
        assert release["outputs"]["prod"]["status"] == "pending"
    finally:
        from conveyor.config import load_project
        from conveyor.release import shut_down_stage

        for stage in ports:
            shut_down_stage(load_project(root), stage)
    capsys.readouterr()


def test_failing_step_stops_the_pipeline_with_its_exit_code(tmp_path, capsys):
    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    (root / "train.py").write_text("raise SystemExit('no data today')\n")
    assert main(["pipeline", "run", "build", "--env", "stage", "-p", str(root)]) == 1
    err = capsys.readouterr().err
    assert "step 'train' exited 1" in err
    state = json.loads((root / "results" / "pipeline-build.json").read_text())
    assert [s["name"] for s in state["steps"]] == ["secrets", "gate-secrets", "train"]


def test_a_value_an_earlier_step_did_not_print_is_a_clear_error():
    from conveyor.errors import ConveyorError
    from conveyor.pipelines.definitions import BUILD
    from conveyor.pipelines.runner import command_of

    build = BUILD.step("build")
    trained = {"train": {"registered": [{"name": "m", "version": "3"}]}}
    assert command_of(build, {"env": "stage"}, trained)[-3:] == ["--model", "m/3", "--json"]
    with pytest.raises(ConveyorError, match=r"step 'train' gave no \{train\.registered\.0\.name\}"):
        command_of(build, {"env": "stage"}, {"train": {"registered": []}})


def test_a_step_whose_published_output_holds_a_secret_fails(tmp_path, capsys):
    from conveyor.config import load_project
    from conveyor.errors import CheckFailed
    from conveyor.pipelines.definitions import Pipeline, Step
    from conveyor.pipelines.runner import run_pipeline
    from conveyor.secrets.redaction import forget_all

    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    lake_url = load_project(root).environment("dev").lake_url
    forget_all()  # the step's process knows nothing yet: the scan reads the store itself
    (root / "results").mkdir()
    (root / "results" / "report.txt").write_text(f"trained on {lake_url}\n")
    leaky = Pipeline(
        "leaky",
        "a step publishing a report",
        (Step("list", "list secrets", ("secrets", "list", "--env", "{env}"), publishes=("results/report.txt",)),),
    )
    with pytest.raises(CheckFailed, match=r"report\.txt: the value of datalake-fqdn") as caught:
        run_pipeline(root, leaky, {"env": "dev"}, announce=lambda _: None)
    assert lake_url not in str(caught.value)
    (root / "results" / "report.txt").write_text("trained on the dev lake\n")
    run_pipeline(root, leaky, {"env": "dev"}, announce=lambda _: None)
    capsys.readouterr()


def test_a_run_with_json_prints_only_its_state_on_stdout(tmp_path, capsys):
    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    capsys.readouterr()
    code = main(["pipeline", "run", "build", "--env", "stage", "--step", "secrets", "--json", "-p", str(root)])
    out, err = capsys.readouterr()
    assert code == 0, err
    state = json.loads(out)  # the step's own output went to stderr
    assert state["pipeline"] == "build" and [s["name"] for s in state["steps"]] == ["secrets"]
    assert state == json.loads((root / "results" / "pipeline-build.json").read_text())
