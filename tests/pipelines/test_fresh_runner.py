"""The rendered GitHub workflows run on fresh runners: the build job in one folder, the release job in another,
sharing only the build job's declared artifact, conveyor installed by the install step as rendered; then the
prod job, in the `prod` environment, deploys only once an approver has signed.

The team's shared services stand for themselves: the MLflow registry and the release ledger are files outside
both jobs' folders (a team's database server), the lakes are the project's local ones, and the CI secrets are the
values of the project's stores, as a CI administrator would paste them.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from github_runner import Runner

from conveyor.examples.scaffold import init_project

pytestmark = [pytest.mark.slow, pytest.mark.container]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _store(path: Path) -> dict[str, str]:
    import tomllib

    return {str(k): str(v) for k, v in tomllib.loads(path.read_text()).items()}


def test_the_rendered_workflows_build_and_release_on_fresh_runners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from conveyor.trust.keys import make_key

    ports = {"qa": _port(), "prod": _port()}
    made = init_project(
        tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=600, release_ports=ports
    )
    root = made.root
    team = tmp_path / "team"  # what outlives a runner: the team's registry and ledger
    team.mkdir()
    text = (root / "conveyor.toml").read_text()
    for env in ("stage", "prod"):
        text = text.replace(
            f"[environments.{env}]\n", f'[environments.{env}]\nregistry = "sqlite:///{team}/mlflow-{env}.db"\n', 1
        )
    (root / "conveyor.toml").write_text(text)
    signers = root / "allowed_signers"
    keys = {name: make_key(tmp_path / "keys" / name, name) for name in ("ci", "alice", "bob")}
    signers.write_text(signers.read_text() + "".join(f"{n} {k.public.openssh()}\n" for n, k in keys.items()))
    from conveyor.cli.main import main

    assert main(["ci", "render", "github", "-p", str(root)]) == 0
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "team keys, shared registry, CI"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    stage_values = _store(tmp_path / "s" / "stage.toml")
    secrets = {f"CONVEYOR_STAGE_{k.upper().replace('-', '_')}": v for k, v in stage_values.items()}
    secrets |= {
        f"CONVEYOR_GATES_{k.upper().replace('-', '_')}": v for k, v in _store(tmp_path / "s" / "gates.toml").items()
    }
    secrets["CONVEYOR_SIGNING_KEY"] = (tmp_path / "keys" / "ci").read_text()
    secrets["CONVEYOR_LEDGER_URL"] = f"sqlite:///{team}/ledger.db"
    runner = Runner(tmp_path / "runner", root, secrets, {"CONVEYOR_ADOPT": commit})

    workflows = root / ".github" / "workflows"
    build = yaml.safe_load((workflows / "conveyor-build.yml").read_text())["jobs"]["build"]
    work, steps = runner.run_job("build", build)
    failed = [s for s in steps if s.code != 0]
    assert not failed, "\n".join(f"--- {s.name} (exit {s.code})\n{s.output[-3000:]}" for s in failed)
    assert [s.name for s in steps][:3] == ["actions/checkout@v4", "actions/setup-python@v5", "install conveyor"]
    installed = subprocess.run(
        [str(runner.root / "build" / "python" / "bin" / "python"), "-c", "import conveyor; print(conveyor.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(runner.root / "build" / "python") in installed  # the wheel the install step installed, not the tests'
    (built,) = (runner.artifacts / "build").glob("*/build.json")
    assert (built.parent / "image.oci.tar").is_file() and (built.parent / "package").is_dir()
    (work / ".conveyor" / "builds").rename(work / ".conveyor" / "builds.gone")  # nothing of it is read again

    release_job = yaml.safe_load((workflows / "conveyor-release.yml").read_text())["jobs"]["release"]
    release_work, steps = runner.run_job("release", release_job)
    deploy_job = yaml.safe_load((workflows / "conveyor-release.yml").read_text())["jobs"]["deploy-prod"]
    assert deploy_job["environment"] == {"name": "prod"} and deploy_job["needs"] == "release"
    worked = [release_work]
    try:
        failed = [s for s in steps if s.code != 0]
        assert not failed, "\n".join(f"--- {s.name} (exit {s.code})\n{s.output[-3000:]}" for s in failed)
        state = json.loads((release_work / "results" / "pipeline-release.json").read_text())
        assert state["outputs"]["qa"]["status"] == "live" and state["outputs"]["prod"]["status"] == "pending"
        assert state["parameters"]["build"].startswith(".conveyor/builds/")  # the downloaded artifact
        prod = state["outputs"]["prod"]["id"]
        assert runner.outputs["release"] == {"prod": str(prod)}

        # the environment's review alone deploys nothing: the ledger holds no signed approval yet
        early, steps = runner.run_job("deploy-early", deploy_job | {"needs": "release"})
        worked.append(early)
        assert steps[-1].code == 1 and "needs 1 more approval" in steps[-1].output, steps[-1].output[-2000:]
        # alice signs from her laptop, leaving the deployment to CI; then the prod job deploys it
        monkeypatch.setenv("CONVEYOR_LEDGER_URL", secrets["CONVEYOR_LEDGER_URL"])
        capsys.readouterr()
        code = main(["approve", str(prod), "--key", str(tmp_path / "keys" / "alice"), "--no-deploy", "--json",
                     "-p", str(release_work)])  # fmt: skip
        assert code == 0 and json.loads(capsys.readouterr().out)["status"] == "approved"
        deployed, steps = runner.run_job("deploy-prod", deploy_job)
        worked.append(deployed)
        failed = [s for s in steps if s.code != 0]
        assert not failed, "\n".join(f"--- {s.name} (exit {s.code})\n{s.output[-3000:]}" for s in failed)
    finally:
        from conveyor.config import load_project
        from conveyor.release import shut_down_stage

        for folder in worked:
            for stage in ports:
                if (folder / "conveyor.toml").is_file():
                    shut_down_stage(load_project(folder), stage)
    # the team's ledger holds both releases, adopted at the reviewed commit, every event verified
    from conveyor.release.ledger import Ledger

    ledger = Ledger.from_url(f"sqlite:///{team}/ledger.db")
    try:
        report = ledger.verify_audit()
        assert report.ok and report.entries >= 5, report.trouble
        state = ledger.verified().state
        assert {r.stage: str(r.status) for r in state.releases.values()} == {"qa": "live", "prod": "live"}
        assert state.releases[prod].deployment is not None and state.releases[prod].deployment.started_by == "ci"
    finally:
        ledger.close()
