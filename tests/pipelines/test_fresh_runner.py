"""The rendered GitHub workflows run on fresh runners: the build job in one folder, the release job in another,
sharing only the build job's declared artifact, conveyor installed by the install step as rendered; then the
prod job, in the `prod` environment, deploys only once an approver has signed. The rendered Azure prod stage runs
on a fresh agent in the agent's step order, its release number the release stage's output variable.

The team's shared services stand for themselves: the MLflow registry and the release ledger are files outside
both jobs' folders (a team's database server), the lakes are the project's local ones, and the CI secrets are the
values of the project's stores, as a CI administrator would paste them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from azure_runner import AzureRunner
from github_runner import Runner

from conveyor.examples.scaffold import init_project


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _store(path: Path) -> dict[str, str]:
    import tomllib

    return {str(k): str(v) for k, v in tomllib.loads(path.read_text()).items()}


@pytest.mark.slow
@pytest.mark.container
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
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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
        code = main(
            [
                "approve",
                str(prod),
                "--key",
                str(tmp_path / "keys" / "alice"),
                "--no-deploy",
                "--json",
                "-p",
                str(release_work),
            ]
        )
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


@pytest.mark.slow
def test_the_rendered_azure_prod_stage_deploys_the_release_stages_output_on_a_fresh_agent(tmp_path: Path) -> None:
    """Checked out (a deployment job is not, unless it says so), conveyor installed as rendered, the build
    downloaded, and `conveyor release deploy` handed the number the release stage's step `prod` set: the team's
    ledger decides (here it holds no policy yet, exit 1). Without that output the command has no release (exit 2)."""
    from conveyor.trust.keys import make_key

    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    signers = root / "allowed_signers"
    key = make_key(tmp_path / "keys" / "ci", "ci")
    signers.write_text(signers.read_text() + f"ci {key.public.openssh()}\n")
    from conveyor.cli.main import main

    assert main(["ci", "render", "azure", "-p", str(root)]) == 0
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "CI"], check=True)
    (tmp_path / "team").mkdir()
    group = {  # the variable group conveyor-stage
        "CONVEYOR_SIGNING_KEY": (tmp_path / "keys" / "ci").read_text(),
        "CONVEYOR_LEDGER_URL": f"sqlite:///{tmp_path / 'team' / 'ledger.db'}",
    }
    runner = AzureRunner(tmp_path / "agent", root, group)
    (runner.artifacts / "build").mkdir(parents=True)  # what the build stage publishes (its content is not read)
    definition = yaml.safe_load((root / "azure-pipelines.yml").read_text())
    for printed, code, said in (({}, 2, "Missing argument"), ({"prod.release": "7"}, 1, "holds no policy yet")):
        runner.outputs["release.release"] = printed  # what the release stage's step prod printed
        work, steps = runner.run_stage_job(definition, "prod", "deploy_prod")
        *setup, deploy = steps
        failed = [s for s in setup if s.code != 0]
        assert not failed, "\n".join(f"--- {s.name} (exit {s.code})\n{s.output[-3000:]}" for s in failed)
        assert [s.name for s in setup][:3] == ["self", "UsePythonVersion@0", "install conveyor"]
        assert (work / ".conveyor" / "builds").is_dir() and (work / "conveyor.toml").is_file()
        assert deploy.code == code and said in deploy.output, deploy.output[-2000:]
        shutil.rmtree(runner.root / "prod-deploy_prod")  # the next run is on a fresh agent too
