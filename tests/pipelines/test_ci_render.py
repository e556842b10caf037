"""CI definitions call exactly the pipeline's steps, and carry the environment's secrets as CI secrets."""

from __future__ import annotations

import yaml

from conveyor.cli.main import main
from conveyor.pipelines import PIPELINES


def test_github_workflows_run_each_build_step(census_project, tmp_path, capsys):
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 0
    build = yaml.safe_load((tmp_path / ".github/workflows/conveyor-build.yml").read_text())
    job = build["jobs"]["build"]
    runs = [s["run"] for s in job["steps"] if "run" in s][1:]
    assert runs == [f"conveyor pipeline run build --step {s.name} --param env=stage" for s in PIPELINES["build"].steps]
    assert job["env"]["CONVEYOR_SECRETS_STAGE"] == "env://CONVEYOR_STAGE_"
    assert "CONVEYOR_STAGE_EVAL_DATA_URL" not in job["env"]  # the sealed set is the gate step's alone
    # the builder key comes from the CI's secret store, and the attestations travel with build.json
    assert job["env"]["CONVEYOR_SIGNING_KEY"] == "${{ secrets.CONVEYOR_SIGNING_KEY }}"
    upload = next(s for s in job["steps"] if s.get("name") == "publish build record")
    assert "attestations/*.dsse.json" in upload["with"]["path"]
    release = yaml.safe_load((tmp_path / ".github/workflows/conveyor-release.yml").read_text())
    assert release["on"]["workflow_run"]["workflows"] == ["conveyor build"]
    assert release["jobs"]["release"]["env"]["CONVEYOR_SIGNING_KEY"] == "${{ secrets.CONVEYOR_SIGNING_KEY }}"
    # A second render refuses to overwrite without --force.
    assert main(["ci", "render", "github", "-p", str(census_project), "--out", str(tmp_path)]) == 2
    assert "already exist" in capsys.readouterr().err


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
    copied = next(s for s in steps if s.get("task") == "CopyFiles@2")["inputs"]["Contents"]
    assert "attestations" in copied
    assert definition["variables"][0] == {"group": "conveyor-stage"}


def test_bad_pipeline_and_ci_names(census_project, capsys):
    assert main(["ci", "render", "jenkins", "-p", str(census_project)]) == 2
    assert "github, azure" in capsys.readouterr().err
    assert main(["pipeline", "run", "deploy", "-p", str(census_project)]) == 2
    assert "Pipelines: build, release" in capsys.readouterr().err
    assert main(["pipeline", "run", "build", "--step", "nope", "-p", str(census_project)]) == 2
    assert "Steps: secrets, train" in capsys.readouterr().err
    assert main(["ci", "render", "github", "--env", "qa", "-p", str(census_project)]) == 2


def test_step_without_its_inputs_is_refused(census_project, capsys):
    code = main(["pipeline", "run", "build", "--step", "test", "--env", "stage", "-p", str(census_project)])
    assert code == 2
    assert "step 'build' has not run yet" in capsys.readouterr().err
