"""CI definitions call exactly the pipeline's steps, and carry the environment's secrets as CI secrets."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conveyor.cli.main import main
from conveyor.examples.scaffold import init_project
from conveyor.pipelines import PIPELINES


def test_github_workflows_run_each_build_step(census_project, tmp_path, capsys):
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    build = yaml.safe_load((tmp_path / ".github/workflows/conveyor-build.yml").read_text())
    job = build["jobs"]["build"]
    runs = [s["run"] for s in job["steps"] if s.get("run", "").startswith("conveyor ")]
    assert runs == [f"conveyor pipeline run build --step {s.name} --param env=stage" for s in PIPELINES["build"].steps]
    steps = {s["run"].split("--step ")[1].split()[0]: s for s in job["steps"] if s.get("run", "") in runs}
    # Each step is handed only what it needs. Training runs the project's own code: no signing key, no gate store.
    assert "CONVEYOR_SIGNING_KEY" not in job["env"] and "CONVEYOR_SECRETS_STAGE" not in job["env"]
    train = steps["train"]["env"]
    assert train["CONVEYOR_SECRETS_STAGE"] == "env://CONVEYOR_STAGE_"
    assert "CONVEYOR_SIGNING_KEY" not in train
    assert not any(name.startswith("CONVEYOR_GATES_") or name == "CONVEYOR_SECRETS_GATES" for name in train)
    gate = steps["gate"]["env"]
    assert gate["CONVEYOR_SECRETS_GATES"] == "env://CONVEYOR_GATES_"
    assert gate["CONVEYOR_GATES_EVAL_DATA_URL"] == "${{ secrets.CONVEYOR_GATES_EVAL_DATA_URL }}"
    assert "CONVEYOR_STAGE_EVAL_DATA_URL" not in gate  # the sealed set is in the gate store, no environment's
    # the builder key comes from the CI's secret store, only into the steps that sign
    for name in ("build", "test", "gate"):
        assert steps[name]["env"]["CONVEYOR_SIGNING_KEY"] == "${{ secrets.CONVEYOR_SIGNING_KEY }}"
    assert "CONVEYOR_SIGNING_KEY" not in steps["secrets"]["env"]
    assert any("bubblewrap" in s.get("run", "") for s in job["steps"][: job["steps"].index(steps["train"])])
    # what a later job needs travels as the artifact: the whole build folder, image archive included
    upload = next(s for s in job["steps"] if s.get("name", "").startswith("publish the build"))
    assert upload["with"]["path"] == ".conveyor/builds/" and upload["with"]["if-no-files-found"] == "error"
    assert build["permissions"] == {"contents": "read", "checks": "write"}
    report = next(s for s in job["steps"] if s.get("uses", "").startswith("dorny/test-reporter"))
    assert report["with"]["path"] == "results/junit.xml" and report["if"] == "always()"
    assert "apt-get update" in next(s["run"] for s in job["steps"] if "bubblewrap" in s.get("run", ""))
    # conveyor is installed pinned: this checkout's wheel, written beside the CI files, checked before install
    install = next(s["run"] for s in job["steps"] if s.get("name") == "install conveyor")
    (wheel,) = (tmp_path / "ci" / "wheels").glob("conveyor-*.whl")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in install and "sha256sum -c" in install
    assert f'pip install "./ci/wheels/{wheel.name}[all]"' in install
    release = yaml.safe_load((tmp_path / ".github/workflows/conveyor-release.yml").read_text())
    assert release["on"]["workflow_run"]["workflows"] == ["conveyor build"]
    assert release["permissions"] == {"contents": "read", "actions": "read"}
    release_steps = [s for s in release["jobs"]["release"]["steps"] if s.get("run", "").startswith("conveyor ")]
    assert all(s["env"]["CONVEYOR_SIGNING_KEY"] == "${{ secrets.CONVEYOR_SIGNING_KEY }}" for s in release_steps)
    # The same render again writes the same files; over a file changed since, it refuses without --force.
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    edited = tmp_path / ".github/workflows/conveyor-build.yml"
    edited.write_text(edited.read_text() + "# a local change\n")
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 2
    assert "conveyor-build.yml already exist" in capsys.readouterr().err


def test_azure_pipeline_publishes_junit_and_cobertura(census_project, tmp_path):
    assert main(["ci", "render", "azure", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    definition = yaml.safe_load((tmp_path / "azure-pipelines.yml").read_text())
    steps = definition["stages"][0]["jobs"][0]["steps"]
    tasks = {s.get("task"): s.get("inputs") for s in steps if "task" in s}
    assert tasks["PublishTestResults@2"]["testResultsFormat"] == "JUnit"
    assert tasks["PublishCodeCoverageResults@2"]["summaryFileLocation"] == "results/coverage.xml"
    scripts = [s["script"] for s in steps if "script" in s]
    assert "conveyor pipeline run build --step gate --param env=stage" in scripts
    gate = next(s for s in steps if s.get("script", "").endswith("--step gate --param env=stage"))
    assert gate["env"]["CONVEYOR_SIGNING_KEY"] == "$(CONVEYOR_SIGNING_KEY)"
    assert gate["env"]["CONVEYOR_SECRETS_GATES"] == "env://CONVEYOR_GATES_"
    train = next(s for s in steps if s.get("script", "").endswith("--step train --param env=stage"))
    assert "CONVEYOR_SIGNING_KEY" not in train["env"] and "CONVEYOR_SECRETS_GATES" not in train["env"]
    published = [s["inputs"] for s in steps if s.get("task") == "PublishBuildArtifacts@1"]
    assert {"PathtoPublish": ".conveyor/builds", "ArtifactName": "build"} in published
    assert definition["variables"][0] == {"group": "conveyor-stage"}


def test_azure_prod_stage_deploys_the_release_the_release_stage_requested(census_project, tmp_path):
    """Stage prod mirrors GitHub's deploy-prod job: a deployment job in the environment prod, reading the release
    stage's output variable, installing conveyor as the other jobs do, deploying only what the ledger approved."""
    assert main(["ci", "render", "azure", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    definition = yaml.safe_load((tmp_path / "azure-pipelines.yml").read_text())
    stages = {s["stage"]: s for s in definition["stages"]}
    assert [s["stage"] for s in definition["stages"]] == ["build", "release", "prod"]
    prod = stages["prod"]
    assert prod["dependsOn"] == "release" and prod["condition"] == "succeeded()"
    (job,) = prod["jobs"]
    assert job["environment"] == "prod" and "deployment" in job and "steps" not in job
    # the variable is the release stage's release job's step `prod`, which sets it as an output
    (variable,) = job["variables"]
    assert variable["name"] == "release"
    assert variable["value"] == "$[ stageDependencies.release.release.outputs['prod.release'] ]"
    (release_job,) = stages["release"]["jobs"]
    assert release_job["job"] == "release"
    step = next(s for s in release_job["steps"] if s.get("name") == "prod")
    command, _, output = step["script"].partition(" && ")
    assert command.startswith("conveyor pipeline run release --step prod ")  # printed only once it succeeded
    assert "##' 'vso[task.setvariable variable=release;isOutput=true]%s" in output
    assert "##vso[" not in step["script"]  # the echoed script text sets nothing
    state = tmp_path / "results" / "pipeline-release.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"outputs": {"prod": {"id": 7}}}))
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    printed = subprocess.run(["bash", "-c", output], cwd=tmp_path, env={"PATH": path}, capture_output=True, text=True)
    assert printed.stdout == "##vso[task.setvariable variable=release;isOutput=true]7\n", printed.stderr
    steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    assert steps[0] == {"checkout": "self"}
    install = next(s for s in stages["build"]["jobs"][0]["steps"] if s.get("displayName") == "install conveyor")
    assert install in steps and install in release_job["steps"]
    assert any(s.get("task") == "DownloadBuildArtifacts@1" for s in steps)
    deploy = steps[-1]
    assert deploy["script"] == "conveyor release deploy $(release)"
    assert deploy["env"] == {
        "CONVEYOR_LEDGER_URL": "$(CONVEYOR_LEDGER_URL)",
        "CONVEYOR_SIGNING_KEY": "$(CONVEYOR_SIGNING_KEY)",
    }


def test_bad_pipeline_and_ci_names(census_project, capsys):
    assert main(["ci", "render", "jenkins", "-p", str(census_project)]) == 2
    assert "github, azure" in capsys.readouterr().err
    assert main(["pipeline", "run", "deploy", "-p", str(census_project)]) == 2
    assert "Pipelines: build, release" in capsys.readouterr().err
    assert main(["pipeline", "run", "build", "--step", "nope", "-p", str(census_project)]) == 2
    assert "Steps: secrets, gate-secrets, train" in capsys.readouterr().err
    assert main(["ci", "render", "github", "--env", "qa", "-p", str(census_project)]) == 2


def test_step_without_its_inputs_is_refused(census_project, capsys):
    code = main(["pipeline", "run", "build", "--step", "test", "--env", "stage", "-p", str(census_project)])
    assert code == 2
    assert "step 'build' has not run yet" in capsys.readouterr().err


def test_rendered_files_validate_against_the_ci_systems_schemas(census_project, tmp_path):
    """`check-jsonschema`'s vendored GitHub Actions and Azure Pipelines schemas, offline."""
    import shutil

    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    assert main(["ci", "render", "azure", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    github = sorted(str(p) for p in (tmp_path / ".github/workflows").glob("*.yml"))
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", "--regex-variant", "python", *github],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Its Azure schema predates PublishCodeCoverageResults@2: check a copy that names @1 instead.
    azure = tmp_path / "azure-pipelines.yml"
    checked = tmp_path / "azure-checked.yml"
    checked.write_text(azure.read_text().replace("PublishCodeCoverageResults@2", "PublishCodeCoverageResults@1"))
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.azure-pipelines", "--regex-variant", "python", str(checked)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_batch_step_the_project_adds_is_a_step_of_the_build_pipeline_and_of_ci(tmp_path):
    from conveyor.config import load_project
    from conveyor.errors import ConfigError
    from conveyor.pipelines import find_pipeline, render_ci

    root = init_project(tmp_path / "census", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=100).root
    assert [s.name for s in find_pipeline("build", load_project(root)).steps][-1] == "verify"
    toml = root / "conveyor.toml"
    base = toml.read_text()
    toml.write_text(base + '\n[pipelines.build.score_batch]\ninput = "in.csv"\noutput = "out"\nengine = "spark"\n')
    step = find_pipeline("build", load_project(root)).steps[-1]
    assert step.name == "score-batch"
    assert step.args[:3] == ("score-batch", "--build", "{build.path}") and "spark" in step.args
    written = render_ci(load_project(root), "github", out=tmp_path / "ci")
    text = "".join(p.read_text() for p in written if p.suffix == ".yml")
    assert "conveyor pipeline run build --step score-batch" in text
    toml.write_text(base + '\n[pipelines.build.score_batch]\ninput = "in.csv"\noutput = "out"\nengine = "gpu"\n')
    with pytest.raises(ConfigError, match="engine"):
        load_project(root)


def test_out_naming_a_file_is_a_usage_error(census_project, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        (
            '{"url": "https://github.com/acme/conveyor.git", "vcs_info": {"vcs": "git", "commit_id": "'
            + "a" * 40
            + '"}}',
            'pip install "conveyor[all] @ git+https://github.com/acme/conveyor.git@' + "a" * 40 + '"',
        ),
        (None, 'pip install "conveyor[all]==1.2.3"'),
    ],
)
def test_ci_installs_the_conveyor_that_rendered_it(monkeypatch, direct_url, expected):
    """Installed from git: that commit; from an index: that version (a checkout or a wheel file: a wheel of it)."""
    from conveyor.pipelines import install

    class Installed:  # what importlib.metadata says of an installed conveyor
        version = "1.2.3"

        def read_text(self, name: str) -> str | None:
            return direct_url if name == "direct_url.json" else None

    monkeypatch.setattr(install, "distribution", lambda name: Installed())
    source = install.install_source()
    assert source.command == expected and source.files == {}
    assert install.install_source("uv pip install conveyor").command == "uv pip install conveyor"
