"""Run a rendered GitHub Actions job as a hosted runner would: a fresh folder, the repository checked out at its
commit, a fresh HOME and Python environment, `run:` steps in bash with the job's and the step's `env` and the
repository's secrets, and only declared artifacts carried between jobs.

What the runner image provides is stood in for, never the steps: `actions/checkout` clones the repository,
`actions/setup-python` is the Python the tests run on, upload/download-artifact copy into and out of a shared
artifact store, `dorny/test-reporter` parses the JUnit file, and `sudo`/`apt-get` are the runner's (packages the
machine lacks fail the step). The Python environment is new and holds only what the install step installs; the
libraries conveyor depends on are taken from the test environment (as a pip cache would give them), with the
native programs their wheels install (uv).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\$\{\{\s*(?P<expr>[^}]+?)\s*\}\}")


@dataclass
class StepRun:
    name: str
    code: int
    output: str


@dataclass
class Runner:
    """One machine's worth of jobs: each gets its own folder under `root`; `artifacts` is shared."""

    root: Path
    repository: Path
    secrets: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    passthrough: tuple[str, ...] = ("CONVEYOR_CACHE_DIR", "CONTAINERS_CONF", "TMPDIR")

    @staticmethod
    def network(name: str) -> bool:
        """The machine's way to the package index (certificates, proxies, pip's and uv's settings): a runner's own."""
        upper = name.upper()
        return upper.startswith(("PIP_", "UV_")) or any(p in upper for p in ("CERT", "CA_BUNDLE", "SSL", "PROXY"))

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # job → its `outputs`, for `needs`

    def run_job(self, name: str, job: dict[str, Any]) -> tuple[Path, list[StepRun]]:
        """Run every step of `job` in order (after a failure only `if: always()` steps); returns the job's
        working folder and what each step did. A step's `$GITHUB_OUTPUT` lines become `steps.ID.outputs`, and
        the job's `outputs` what later jobs read as `needs.JOB.outputs`."""
        work, base = self.machine(name)
        base["GITHUB_ACTIONS"] = "true"
        steps: dict[str, dict[str, str]] = {}
        env = base | {k: self._expand(v, steps) for k, v in (job.get("env") or {}).items()}
        done: list[StepRun] = []
        failed = False
        for index, step in enumerate(job["steps"]):
            title = step.get("name") or step.get("uses") or f"step {index}"
            if failed and "always()" not in str(step.get("if", "")):
                continue
            if "uses" in step:
                code, output = self._action(step["uses"], step.get("with") or {}, work)
            else:
                output_file = self.root / name / f"output-{index}"
                output_file.touch()
                step_env = env | {k: self._expand(v, steps) for k, v in (step.get("env") or {}).items()}
                step_env["GITHUB_OUTPUT"] = str(output_file)
                completed = subprocess.run(
                    ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
                    cwd=work,
                    env=step_env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                code, output = completed.returncode, completed.stdout + completed.stderr
                if "id" in step:
                    lines = output_file.read_text().splitlines()
                    steps[step["id"]] = dict(line.split("=", 1) for line in lines if "=" in line)
            done.append(StepRun(title, code, output))
            failed = failed or code != 0
        self.outputs[name] = {k: self._expand(v, steps) for k, v in (job.get("outputs") or {}).items()}
        return work, done

    def machine(self, name: str) -> tuple[Path, dict[str, str]]:
        """A fresh machine for job `name`: its (not yet made) working folder and its base environment, with a
        new HOME and a new Python environment holding only the libraries a pip cache would give."""
        home = self.root / name / "home"
        work = self.root / name / "work"
        venv = self.root / name / "python"
        home.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        # the libraries a pip cache would give: importable in the new environment, conveyor itself not
        site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
        (site / "test-environment-libraries.pth").write_text(f"{self._libraries()}\n")
        for binary in ("uv", "uvx"):  # native programs dependency wheels put in bin/ (no shebang to rewrite)
            found = Path(sys.executable).parent / binary
            if found.is_file():
                os.link(found, venv / "bin" / binary)
        shims = self._shims(self.root / name / "shims", venv)
        base = {
            "PATH": f"{venv / 'bin'}:{shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "VIRTUAL_ENV": str(venv),
            **{k: v for k, v in os.environ.items() if k in self.passthrough or self.network(k)},
        }
        return work, base

    def _libraries(self) -> Path:
        """The test environment's installed libraries, every one but conveyor (which the install step installs)."""
        folder = self.root / "libraries"
        if not folder.is_dir():  # hard links: a real folder (the training sandbox binds it), made in a second
            folder.mkdir(parents=True)
            for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
                lowered = entry.name.lower()
                if lowered.startswith(("conveyor", "__editable__", "_conveyor")) or entry.suffix == ".pth":
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, folder / entry.name, symlinks=True, copy_function=os.link)
                else:
                    os.link(entry, folder / entry.name, follow_symlinks=False)
        return folder

    def _expand(self, value: object, steps: dict[str, dict[str, str]]) -> str:
        def one(match: re.Match[str]) -> str:
            expr = match["expr"]
            parts = expr.split(".")
            if expr.startswith("secrets."):
                return self.secrets.get(expr.removeprefix("secrets."), "")  # an unset secret arrives empty
            if expr.startswith("vars."):
                return self.variables.get(expr.removeprefix("vars."), "")
            if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
                return steps.get(parts[1], {}).get(parts[3], "")
            if len(parts) == 4 and parts[0] == "needs" and parts[2] == "outputs":
                return self.outputs[parts[1]].get(parts[3], "")  # a job that did not run is an error
            raise AssertionError(f"the runner stand-in does not evaluate ${{{{ {expr} }}}}")

        return EXPRESSION.sub(one, str(value))

    def _shims(self, folder: Path, venv: Path) -> Path:
        folder.mkdir(parents=True)
        scripts = {
            # pip of the new environment (the test environment's pip, pointed at it)
            "pip": f'#!/bin/sh\nexec "{sys.executable}" -m pip --python "{venv / "bin" / "python"}" "$@"\n',
            "sudo": '#!/bin/sh\nexec "$@"\n',
            # the runner's package manager: what this machine has installed is there; anything else fails
            "apt-get": '#!/bin/sh\n[ "$1" = update ] && exit 0\nshift\nfor p in "$@"; do case "$p" in -*) ;; '
            '*) dpkg -s "$p" >/dev/null 2>&1 || { echo "apt-get: $p is not on this machine" >&2; exit 100; };; '
            "esac; done\n",
        }
        for name, text in scripts.items():
            (folder / name).write_text(text)
            (folder / name).chmod(0o755)
        return folder

    def _action(self, uses: str, inputs: dict[str, Any], work: Path) -> tuple[int, str]:
        action = uses.split("@")[0]
        if action == "actions/checkout":
            completed = subprocess.run(
                ["git", "clone", "--quiet", str(self.repository), str(work)], capture_output=True, text=True
            )
            return completed.returncode, completed.stderr
        if action == "actions/setup-python":
            return 0, ""
        if action == "actions/upload-artifact":
            return self._upload(inputs, work)
        if action == "actions/download-artifact":
            source = self.artifacts / inputs["name"]
            if not source.is_dir():
                return 1, f"no artifact {inputs['name']}"
            shutil.copytree(source, work / inputs.get("path", "."), dirs_exist_ok=True)
            return 0, ""
        if action == "dorny/test-reporter":
            report = work / inputs["path"]
            try:
                suites = ET.parse(report).getroot()
            except (OSError, ET.ParseError) as exc:
                return 1, f"no JUnit report at {report}: {exc}"
            return 0, f"{suites.tag}: {len(list(suites.iter('testcase')))} test cases"
        raise AssertionError(f"the runner stand-in does not know {uses}")

    def _upload(self, inputs: dict[str, Any], work: Path) -> tuple[int, str]:
        """As upload-artifact: the paths' least common ancestor becomes the artifact's root."""
        patterns = [line.strip() for line in str(inputs["path"]).splitlines() if line.strip()]
        found = [path for pattern in patterns for path in sorted(work.glob(pattern.rstrip("/")))]
        if not found:
            return (1 if inputs.get("if-no-files-found") == "error" else 0), f"no files for {patterns}"
        target = self.artifacts / inputs["name"]
        if len(found) == 1 and found[0].is_dir():
            shutil.copytree(found[0], target, dirs_exist_ok=True)
            return 0, ""
        common = Path(os.path.commonpath([str(p.parent) for p in found]))
        for path in found:
            destination = target / path.relative_to(common)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, destination, dirs_exist_ok=True)
            else:
                shutil.copy2(path, destination)
        return 0, ""
