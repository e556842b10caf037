"""Run a rendered Azure Pipelines job as a Microsoft-hosted agent would, on the machine `github_runner` stands in.

What the agent does is stood in for, never the steps: a `job` checks the repository out first (a `deployment` job
only when a `checkout: self` step says so), `$(name)` macros are expanded from the pipeline's variables, its
variable group (secret: not put in the environment) and the job's `$[ stageDependencies... ]` runtime
expressions, other variables arrive in the environment upper-cased; `script` steps run in bash as the agent runs
them (no `set -e`: a script's last command decides); `##vso[task.setvariable ...]` lines set variables, and
those with `isOutput=true` are what later stages read. Tasks: UsePythonVersion is the tests' Python, the build
artifact tasks copy into and out of the shared artifact store, PublishTestResults parses the JUnit file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github_runner import Runner, StepRun

MACRO = re.compile(r"\$\((?P<name>[A-Za-z0-9_.]+)\)")
STAGE_OUTPUT = re.compile(r"^\$\[\s*stageDependencies\.(\w+)\.(\w+)\.outputs\['(\w+)\.(\w+)'\]\s*\]$")
LOGGING = re.compile(r"^##vso\[task\.setvariable (?P<props>[^\]]*)\](?P<value>.*)$")


@dataclass
class AzureRunner(Runner):
    """`secrets` is the pipeline's variable group; `variables` the pipeline's own (set where it is defined)."""

    def run_stage_job(self, definition: dict[str, Any], stage: str, job: str) -> tuple[Path, list[StepRun]]:
        """Run job `job` of stage `stage` (after a failure only `condition: always()` steps); returns the job's
        working folder and what each step did. Its output variables become `self.outputs["STAGE.JOB"]`."""
        found = next(s for s in definition["stages"] if s["stage"] == stage)
        spec = next(j for j in found["jobs"] if j.get("job", j.get("deployment")) == job)
        work, env = self.machine(f"{stage}-{job}")
        env |= {"TF_BUILD": "True", "SYSTEM_DEFAULTWORKINGDIRECTORY": str(work)}
        secret = dict(self.secrets)
        plain = {"System.DefaultWorkingDirectory": str(work), **self.variables}
        for entry in definition.get("variables") or []:
            if "name" in entry:
                plain[entry["name"]] = str(entry["value"])
        for entry in spec.get("variables") or []:
            plain[entry["name"]] = self._runtime(str(entry["value"]))
        if "deployment" in spec:
            steps = spec["strategy"]["runOnce"]["deploy"]["steps"]
        else:
            steps = spec["steps"]
            if not any("checkout" in s for s in steps):
                steps = [{"checkout": "self"}, *steps]
        outputs: dict[str, str] = {}
        done: list[StepRun] = []
        failed = False
        for index, step in enumerate(steps):
            title = step.get("displayName") or step.get("task") or step.get("checkout") or f"step {index}"
            if failed and "always()" not in str(step.get("condition", "")):
                continue
            known = plain | secret
            if "checkout" in step:
                code, output = self._checkout(step["checkout"], work)
            elif "task" in step:
                inputs = {k: _macros(str(v), known) for k, v in (step.get("inputs") or {}).items()}
                code, output = self._task(step["task"], inputs, work)
            else:
                script = self.root / f"{stage}-{job}" / f"script-{index}.sh"
                script.write_text(_macros(step["script"], known))
                step_env = env | {_env_name(k): v for k, v in plain.items()}
                step_env |= {k: _macros(str(v), known) for k, v in (step.get("env") or {}).items()}
                completed = subprocess.run(
                    ["bash", "--noprofile", "--norc", str(script)],
                    cwd=work,
                    env=step_env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                code, output = completed.returncode, completed.stdout + completed.stderr
                for line in completed.stdout.splitlines():
                    command = LOGGING.match(line.strip())
                    if command is None:
                        continue
                    props = dict(p.split("=", 1) for p in command["props"].split(";") if "=" in p)
                    if props.get("isOutput") == "true":
                        outputs[f"{step['name']}.{props['variable']}"] = command["value"]
                    elif props.get("issecret") == "true":
                        secret[props["variable"]] = command["value"]
                    else:
                        plain[props["variable"]] = command["value"]
            done.append(StepRun(title, code, output))
            failed = failed or code != 0
        self.outputs[f"{stage}.{job}"] = outputs
        return work, done

    def _runtime(self, value: str) -> str:
        expression = STAGE_OUTPUT.match(value)
        if expression is None:
            if value.startswith("$["):
                raise AssertionError(f"the agent stand-in does not evaluate {value}")
            return value
        stage, job, step, name = expression.groups()
        return self.outputs[f"{stage}.{job}"].get(f"{step}.{name}", "")  # a job that did not run is an error

    def _checkout(self, what: str, work: Path) -> tuple[int, str]:
        if what == "none":
            return 0, ""
        assert what == "self", f"the agent stand-in checks out only self, not {what}"
        completed = subprocess.run(
            ["git", "clone", "--quiet", str(self.repository), str(work)], capture_output=True, text=True
        )
        return completed.returncode, completed.stderr

    def _task(self, task: str, inputs: dict[str, str], work: Path) -> tuple[int, str]:
        name = task.split("@")[0]
        if name == "UsePythonVersion":
            return 0, ""
        if name == "PublishBuildArtifacts":
            source = work / inputs["PathtoPublish"]
            if not source.exists():
                return 1, f"no path {source} to publish"
            shutil.copytree(source, self.artifacts / inputs["ArtifactName"], dirs_exist_ok=True)
            return 0, ""
        if name == "DownloadBuildArtifacts":
            source = self.artifacts / inputs["artifactName"]
            if not source.is_dir():
                return 1, f"no artifact {inputs['artifactName']}"
            shutil.copytree(source, work / inputs["downloadPath"] / inputs["artifactName"], dirs_exist_ok=True)
            return 0, ""
        if name == "PublishTestResults":
            report = work / inputs["testResultsFiles"]
            try:
                suites = ET.parse(report).getroot()
            except (OSError, ET.ParseError) as exc:
                return 1, f"no JUnit report at {report}: {exc}"
            return 0, f"{suites.tag}: {len(list(suites.iter('testcase')))} test cases"
        if name == "PublishCodeCoverageResults":
            report = work / inputs["summaryFileLocation"]
            return (0, "") if report.is_file() else (1, f"no coverage report at {report}")
        raise AssertionError(f"the agent stand-in does not know {task}")


def _macros(text: str, variables: dict[str, str]) -> str:
    """`$(name)` of a known variable replaced by its value; any other text (bash's `$(ls ...)`) left as it is."""
    return MACRO.sub(lambda m: variables.get(m["name"], m[0]), text)


def _env_name(variable: str) -> str:
    return variable.upper().replace(".", "_")
