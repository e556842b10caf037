"""CI definitions that call exactly the pipeline's steps: GitHub Actions and Azure Pipelines.

Each CI step is `conveyor pipeline run NAME --step STEP`, so CI shows one line per step, the run's state passes
between steps in results/, and nothing happens in CI that a person cannot run with the same command.
"""

from __future__ import annotations

from typing import Any

import yaml

from conveyor.config import Project
from conveyor.pipelines.definitions import PIPELINES, Pipeline
from conveyor.secrets.env import variable_name

INSTALL = 'pip install "conveyor[all]"'
SIGNING_KEY = "CONVEYOR_SIGNING_KEY"  # the builder's private key, from the CI's secret store (never a repo file)
BUILD_FILES = (".conveyor/builds/*/build.json", ".conveyor/builds/*/attestations/*.dsse.json")


def signing_key_env(style: str) -> dict[str, str]:
    """The CI secret that signs as the builder ([trust] builders, e.g. ci): its key's text, never a file."""
    return {SIGNING_KEY: f"${{{{ secrets.{SIGNING_KEY} }}}}" if style == "github" else f"$({SIGNING_KEY})"}


def secret_env(project: Project, env: str, style: str) -> dict[str, str]:
    """The variables that make CI's own secrets the environment's store (`env://CONVEYOR_<ENV>_`)."""
    prefix = f"CONVEYOR_{env.upper()}_"
    mapping = {f"CONVEYOR_SECRETS_{env.upper()}": f"env://{prefix}"}
    for key in project.required_secrets(env):
        name = variable_name(prefix, key)
        mapping[name] = f"${{{{ secrets.{name} }}}}" if style == "github" else f"$({name})"
    return mapping


def _steps(pipeline: Pipeline, params: str) -> list[tuple[str, str]]:
    return [
        (s.title, f"conveyor pipeline run {pipeline.name} --step {s.name} {params}".strip()) for s in pipeline.steps
    ]


def github(project: Project, env: str = "stage", install: str = INSTALL) -> dict[str, str]:
    """`.github/workflows/conveyor-build.yml` and `conveyor-release.yml`."""
    build = PIPELINES["build"]
    build_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"name": "install conveyor", "run": install},
        *({"name": title, "run": run} for title, run in _steps(build, f"--param env={env}")),
        {
            "name": "publish test results and coverage",
            "if": "always()",
            "uses": "actions/upload-artifact@v4",
            "with": {"name": "results", "path": "results/"},
        },
        {
            "name": "publish build record",
            "uses": "actions/upload-artifact@v4",
            "with": {"name": "build", "path": "\n".join(BUILD_FILES)},
        },
    ]
    workflow = {
        "name": "conveyor build",
        "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
        "jobs": {
            "build": {
                "runs-on": "ubuntu-latest",
                "env": {"CONVEYOR_ENV": env, **secret_env(project, env, "github"), **signing_key_env("github")},
                "steps": build_steps,
            }
        },
    }
    release = PIPELINES["release"]
    release_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"name": "install conveyor", "run": install},
        {
            "uses": "actions/download-artifact@v4",
            "with": {
                "name": "build",
                "path": ".conveyor/builds",
                "run-id": "${{ github.event.workflow_run.id }}",
                "github-token": "${{ github.token }}",
            },
        },
        *(
            {"name": title, "run": run}
            for title, run in _steps(release, '--param build="$(ls .conveyor/builds/*/build.json | head -1)"')
        ),
    ]
    release_workflow = {
        "name": "conveyor release",
        "on": {"workflow_run": {"workflows": ["conveyor build"], "types": ["completed"], "branches": ["main"]}},
        "jobs": {
            "release": {
                "if": "${{ github.event.workflow_run.conclusion == 'success' }}",
                "runs-on": "ubuntu-latest",
                # The ledger must outlive the runner: point it at the team's PostgreSQL.
                "env": {"CONVEYOR_LEDGER_URL": "${{ secrets.CONVEYOR_LEDGER_URL }}", **signing_key_env("github")},
                "steps": release_steps,
            }
        },
    }
    header = "# Written by `conveyor ci render github`: every step is a conveyor command you can run yourself.\n"
    return {
        ".github/workflows/conveyor-build.yml": header + yaml.safe_dump(workflow, sort_keys=False, width=120),
        ".github/workflows/conveyor-release.yml": header + yaml.safe_dump(release_workflow, sort_keys=False, width=120),
    }


def azure(project: Project, env: str = "stage", install: str = INSTALL) -> dict[str, str]:
    """`azure-pipelines.yml`: the build stage and the release stage, as the lab's pipelines did by hand."""
    build = PIPELINES["build"]
    release = PIPELINES["release"]
    build_steps: list[dict[str, Any]] = [
        {"task": "UsePythonVersion@0", "inputs": {"versionSpec": "3.11"}},
        {"script": install, "displayName": "install conveyor"},
        *(
            {
                "script": run,
                "displayName": title,
                "env": {**secret_env(project, env, "azure"), **signing_key_env("azure")},
            }
            for title, run in _steps(build, f"--param env={env}")
        ),
        {
            "task": "PublishTestResults@2",
            "condition": "always()",
            "inputs": {"testResultsFormat": "JUnit", "testResultsFiles": "results/junit.xml"},
        },
        {
            "task": "PublishCodeCoverageResults@2",
            "condition": "always()",
            "inputs": {"summaryFileLocation": "results/coverage.xml"},
        },
        {"task": "PublishBuildArtifacts@1", "inputs": {"PathtoPublish": "results", "ArtifactName": "results"}},
        {
            "task": "CopyFiles@2",
            "inputs": {
                "Contents": "\n".join(path.replace("/*/", "/**/") for path in BUILD_FILES),
                "TargetFolder": "$(Build.ArtifactStagingDirectory)",
            },
        },
        {"task": "PublishBuildArtifacts@1", "inputs": {"ArtifactName": "build"}},
    ]
    release_steps: list[dict[str, Any]] = [
        {"task": "UsePythonVersion@0", "inputs": {"versionSpec": "3.11"}},
        {"script": install, "displayName": "install conveyor"},
        {"task": "DownloadBuildArtifacts@1", "inputs": {"artifactName": "build", "downloadPath": "."}},
        *(
            {
                "script": run,
                "displayName": title,
                "env": {"CONVEYOR_LEDGER_URL": "$(CONVEYOR_LEDGER_URL)", **signing_key_env("azure")},
            }
            for title, run in _steps(release, '--param build="$(ls build/.conveyor/builds/*/build.json | head -1)"')
        ),
    ]
    definition = {
        "trigger": {"branches": {"include": ["main"]}},
        "variables": [{"group": f"conveyor-{env}"}, {"name": "CONVEYOR_ENV", "value": env}],
        "stages": [
            {"stage": "build", "jobs": [{"job": "build", "pool": {"vmImage": "ubuntu-latest"}, "steps": build_steps}]},
            {
                "stage": "release",
                "dependsOn": "build",
                "condition": "succeeded()",
                "jobs": [{"job": "release", "pool": {"vmImage": "ubuntu-latest"}, "steps": release_steps}],
            },
        ],
    }
    header = (
        "# Written by `conveyor ci render azure`: every step is a conveyor command you can run yourself.\n"
        f"# Variable group conveyor-{env} (Key Vault-linked, as in the lab) holds CONVEYOR_{env.upper()}_* secrets,\n"
        f"# CONVEYOR_LEDGER_URL and {SIGNING_KEY} (the builder's private key text; its public key is ci's line in\n"
        "# allowed_signers); production approval is `conveyor approve --key KEY`, by a named approver.\n"
    )
    return {"azure-pipelines.yml": header + yaml.safe_dump(definition, sort_keys=False, width=120)}


RENDERERS = {"github": github, "azure": azure}
