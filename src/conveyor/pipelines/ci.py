"""CI definitions that call exactly the pipeline's steps: GitHub Actions and Azure Pipelines.

Each CI step is `conveyor pipeline run NAME --step STEP`, so CI shows one line per step, the run's state passes
between steps in results/, and nothing happens in CI that a person cannot run with the same command.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from conveyor.errors import ConveyorError
from conveyor.lake.credentials import CREDENTIAL_KEYS
from conveyor.pipelines.definitions import PIPELINES, Pipeline, Step, Store, find_pipeline
from conveyor.secrets.env import variable_name

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Project

SIGNING_KEY = "CONVEYOR_SIGNING_KEY"  # the builder's private key, from the CI's secret store (never a repo file)
BUILDS = ".conveyor/builds"  # every build folder: package, archives, image archive, build.json, attestations


def signing_key_env(style: str) -> dict[str, str]:
    """The CI secret that signs as the builder ([trust] builders, e.g. ci): its key's text, never a file."""
    return {SIGNING_KEY: f"${{{{ secrets.{SIGNING_KEY} }}}}" if style == "github" else f"$({SIGNING_KEY})"}


def _secret(name: str, style: str) -> str:
    return f"${{{{ secrets.{name} }}}}" if style == "github" else f"$({name})"


def _store_env(store: str, keys: list[str] | tuple[str, ...], style: str) -> dict[str, str]:
    """`CONVEYOR_SECRETS_<STORE>=env://CONVEYOR_<STORE>_` and one CI secret per key."""
    prefix = f"CONVEYOR_{store.upper()}_"
    mapping = {f"CONVEYOR_SECRETS_{store.upper()}": f"env://{prefix}"}
    for key in keys:
        mapping[variable_name(prefix, key)] = _secret(variable_name(prefix, key), style)
    return mapping


def secret_env(project: Project, env: str, style: str) -> dict[str, str]:
    """The variables that make CI's own secrets the environment's store (`env://CONVEYOR_<ENV>_`)."""
    return _store_env(env, project.required_secrets(env), style)


def gate_credential_keys(project: Project) -> tuple[str, ...]:
    """The credential keys the sealed set's backend reads: found from its URL in the gate store when this machine
    can read it (the URL itself is never written anywhere), else every key any backend may read."""
    from conveyor.lake.credentials import credential_keys
    from conveyor.lake.location import parse_lake_url

    try:
        location = parse_lake_url(project.gates.eval_data_url(), project.root)
    except ConveyorError:
        return CREDENTIAL_KEYS
    return credential_keys(location.kind)


def gate_env(project: Project, style: str) -> dict[str, str]:
    """The gate step's own store: the sealed set's URL and the credentials its backend needs (an unset CI secret
    arrives empty and counts as absent)."""
    keys = sorted({*project.gates.required_secrets(), *gate_credential_keys(project)})
    return _store_env("gates", keys, style)


def step_env(project: Project, env: str, step: Step, style: str) -> dict[str, str]:
    """What one CI step is handed: only the stores it needs, and the signing key only if it signs."""
    mapping: dict[str, str] = {}
    if Store.ENVIRONMENT in step.stores:
        mapping |= secret_env(project, env, style)
    if Store.GATES in step.stores:
        mapping |= gate_env(project, style)
    if step.signs:
        mapping |= signing_key_env(style)
    return mapping


def prod_output(line: str) -> str:
    """A command printing `line` (a Python string literal's text) with `%s` the prod request's release number."""
    return (
        f"python -c \"import json; print('{line}' % json.load(open('results/pipeline-release.json'))"
        "['outputs']['prod']['id'])\""
    )


PROD_OUTPUT = prod_output("release=%s") + ' >> "$GITHUB_OUTPUT"'  # the job output the deploy job reads
# Stage prod's `release`: the logging command split in two literals, so that the script's text, which the agent
# echoes into the log, does not set it too.
AZURE_PROD_OUTPUT = prod_output("##' 'vso[task.setvariable variable=release;isOutput=true]%s")


def _github_release_step(step: Step, run: str, env: dict[str, str]) -> dict[str, Any]:
    if step.name != "prod":
        return {"name": step.title, "run": run, "env": env}
    return {"name": step.title, "id": "prod", "run": f"{run}\n{PROD_OUTPUT}", "env": env}


PROD_RELEASE = "$[ stageDependencies.release.release.outputs['prod.release'] ]"  # the release stage's prod step


def _azure_release_step(step: Step, run: str, env: dict[str, str]) -> dict[str, Any]:
    if step.name != "prod":
        return {"script": run, "displayName": step.title, "env": env}
    # a script step is not run with `set -e`: the output is printed only when the request succeeded
    return {"script": f"{run} && {AZURE_PROD_OUTPUT}", "name": "prod", "displayName": step.title, "env": env}


def _steps(pipeline: Pipeline, params: str) -> list[tuple[Step, str]]:
    return [(s, f"conveyor pipeline run {pipeline.name} --step {s.name} {params}".strip()) for s in pipeline.steps]


SANDBOX_INSTALL = (  # train.py runs confined
    "sudo apt-get update -qq && sudo apt-get install -y --no-install-recommends bubblewrap"
)


def github(project: Project, env: str = "stage", install: str = "") -> dict[str, str]:
    """`.github/workflows/conveyor-build.yml` and `conveyor-release.yml`."""
    build = find_pipeline("build", project)
    build_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"name": "install conveyor", "run": install},
        {"name": "install the training sandbox", "run": SANDBOX_INSTALL},
        *(
            {"name": step.title, "run": run, "env": step_env(project, env, step, "github")}
            for step, run in _steps(build, f"--param env={env}")
        ),
        {
            "name": "show the test results",
            "if": "always()",
            "uses": "dorny/test-reporter@v1",
            "with": {"name": "conveyor tests (in the image)", "path": "results/junit.xml", "reporter": "java-junit"},
        },
        {
            "name": "publish test results and coverage",
            "if": "always()",
            "uses": "actions/upload-artifact@v4",
            "with": {"name": "results", "path": "results/"},
        },
        {
            "name": "publish the build (package, image archive, build.json, attestations)",
            "uses": "actions/upload-artifact@v4",
            "with": {"name": "build", "path": f"{BUILDS}/", "if-no-files-found": "error"},
        },
    ]
    workflow = {
        "name": "conveyor build",
        "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
        "permissions": {"contents": "read", "checks": "write"},  # checks: the test report
        "jobs": {
            "build": {
                "runs-on": "ubuntu-latest",
                "env": {"CONVEYOR_ENV": env},
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
                "path": BUILDS,
                "run-id": "${{ github.event.workflow_run.id }}",
                "github-token": "${{ github.token }}",
            },
        },
        *(
            _github_release_step(step, run, step_env(project, env, step, "github"))
            for step, run in _steps(release, f'--param build="$(ls {BUILDS}/*/build.json | head -1)"')
        ),
    ]
    ledger_env = {"CONVEYOR_LEDGER_URL": "${{ secrets.CONVEYOR_LEDGER_URL }}"}
    deploy_steps: list[dict[str, Any]] = [
        *copy.deepcopy(release_steps[:4]),  # checkout, Python, conveyor, the build (a deployer ships its own copy)
        {
            "name": "deploy the approved prod release (its approvers' signed approvals decide, not this review)",
            "run": 'conveyor release deploy "$PROD_RELEASE"',
            "env": {"PROD_RELEASE": "${{ needs.release.outputs.prod }}", **signing_key_env("github")},
        },
    ]
    release_workflow = {
        "name": "conveyor release",
        "on": {"workflow_run": {"workflows": ["conveyor build"], "types": ["completed"], "branches": ["main"]}},
        "permissions": {"contents": "read", "actions": "read"},  # actions: the build run's artifact
        "jobs": {
            "release": {
                "if": "${{ github.event.workflow_run.conclusion == 'success' }}",
                "runs-on": "ubuntu-latest",
                # The ledger must outlive the runner: point it at the team's PostgreSQL. A ledger with no policy
                # yet adopts, in CI, only the reviewed commit the CONVEYOR_ADOPT variable names.
                "env": {
                    "CONVEYOR_LEDGER_URL": "${{ secrets.CONVEYOR_LEDGER_URL }}",
                    "CONVEYOR_ADOPT": "${{ vars.CONVEYOR_ADOPT }}",
                },
                "outputs": {"prod": "${{ steps.prod.outputs.release }}"},
                "steps": release_steps,
            },
            # Reviewers see production where GitHub shows it: the `prod` environment (give it the approvers as
            # required reviewers). Each signs first (`conveyor approve N --key KEY --no-deploy`); the job deploys
            # only what the ledger holds as approved.
            "deploy-prod": {
                "needs": "release",
                "runs-on": "ubuntu-latest",
                "environment": {"name": "prod"},
                "env": ledger_env,
                "steps": deploy_steps,
            },
        },
    }
    header = (
        "# Written by `conveyor ci render github`: every step is a conveyor command you can run yourself.\n"
        "# Each step gets only the secrets it needs: CONVEYOR_GATES_* (the sealed set's store) the gate steps,\n"
        f"# {SIGNING_KEY} (the builder's key) the steps that sign; train.py runs in a bubblewrap sandbox.\n"
    )
    return {
        ".github/workflows/conveyor-build.yml": header + yaml.safe_dump(workflow, sort_keys=False, width=120),
        ".github/workflows/conveyor-release.yml": header + yaml.safe_dump(release_workflow, sort_keys=False, width=120),
    }


def azure(project: Project, env: str = "stage", install: str = "") -> dict[str, str]:
    """`azure-pipelines.yml`: the build stage, the release stage and the prod stage that deploys what was approved."""
    build = find_pipeline("build", project)
    release = PIPELINES["release"]
    build_steps: list[dict[str, Any]] = [
        {"task": "UsePythonVersion@0", "inputs": {"versionSpec": "3.11"}},
        {"script": install, "displayName": "install conveyor"},
        {"script": SANDBOX_INSTALL, "displayName": "install the training sandbox"},
        *(
            {"script": run, "displayName": step.title, "env": step_env(project, env, step, "azure")}
            for step, run in _steps(build, f"--param env={env}")
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
            "task": "PublishBuildArtifacts@1",
            "displayName": "publish the build (package, image archive, build.json, attestations)",
            "inputs": {"PathtoPublish": BUILDS, "ArtifactName": "build"},
        },
    ]
    setup: list[dict[str, Any]] = [
        {"task": "UsePythonVersion@0", "inputs": {"versionSpec": "3.11"}},
        {"script": install, "displayName": "install conveyor"},
        {
            "task": "DownloadBuildArtifacts@1",
            "inputs": {"artifactName": "build", "downloadPath": "$(System.DefaultWorkingDirectory)/.conveyor"},
        },
        {"script": "mv .conveyor/build .conveyor/builds", "displayName": "put the build where conveyor finds it"},
    ]
    ledger_env = {"CONVEYOR_LEDGER_URL": "$(CONVEYOR_LEDGER_URL)"}
    release_steps: list[dict[str, Any]] = [
        *setup,
        *(
            _azure_release_step(
                step,
                run,
                {**ledger_env, "CONVEYOR_ADOPT": "$(CONVEYOR_ADOPT)", **step_env(project, env, step, "azure")},
            )
            for step, run in _steps(release, f'--param build="$(ls {BUILDS}/*/build.json | head -1)"')
        ),
    ]
    deploy_steps: list[dict[str, Any]] = [
        {"checkout": "self"},  # a deployment job checks out nothing unless told
        *copy.deepcopy(setup),  # Python, conveyor, the build (a deployer ships its own copy)
        {
            "script": "conveyor release deploy $(release)",
            "displayName": "deploy the approved prod release (its approvers' signed approvals decide, not this check)",
            "env": {**ledger_env, **signing_key_env("azure")},
        },
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
            # Reviewers see production where Azure DevOps shows it: the environment `prod` (give it the approvers
            # as an approval check). Each signs first (`conveyor approve N --key KEY --no-deploy`); the job deploys
            # only what the ledger holds as approved.
            {
                "stage": "prod",
                "dependsOn": "release",
                "condition": "succeeded()",
                "jobs": [
                    {
                        "deployment": "deploy_prod",
                        "pool": {"vmImage": "ubuntu-latest"},
                        "environment": "prod",
                        "variables": [{"name": "release", "value": PROD_RELEASE}],
                        "strategy": {"runOnce": {"deploy": {"steps": deploy_steps}}},
                    }
                ],
            },
        ],
    }
    header = (
        "# Written by `conveyor ci render azure`: every step is a conveyor command you can run yourself.\n"
        f"# Variable group conveyor-{env} (Key Vault-linked, as in the lab) holds CONVEYOR_{env.upper()}_* secrets,\n"
        f"# CONVEYOR_LEDGER_URL and {SIGNING_KEY} (the builder's private key text; its public key is ci's line in\n"
        "# allowed_signers); CONVEYOR_GATES_* (the sealed set's store) is mapped into the gate steps alone, the\n"
        "# signing key into the steps that sign. Stage prod runs in the environment prod (its approval checks): it\n"
        "# deploys, with `conveyor release deploy N`, only what approvers signed (`conveyor approve N --key KEY`).\n"
    )
    return {"azure-pipelines.yml": header + yaml.safe_dump(definition, sort_keys=False, width=120)}


def _same(path: Path, content: str | bytes) -> bool:
    return path.read_bytes() == (content if isinstance(content, bytes) else content.encode())


Renderer = Callable[..., dict[str, str]]
RENDERERS: dict[str, Renderer] = {"github": github, "azure": azure}


def render_ci(
    project: Project,
    system: str,
    env: str = "stage",
    install: str | None = None,
    out: Path | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the CI definitions of `system` (github, azure) into `out` (default the project); returns the files.

    This is `conveyor ci render`. CI installs this very conveyor (`install`: a command of your own instead; see
    `conveyor.pipelines.install`). Files that exist are refused unless `force`; nothing is written when any is.
    """
    from conveyor.pipelines.install import install_source

    if system not in RENDERERS:
        raise ConveyorError(f"cannot render CI for {system!r}", hint=f"Choose one of: {', '.join(RENDERERS)}.")
    project.environment(env)  # an unknown environment is refused before anything is written
    source = install_source(install)
    rendered = RENDERERS[system](project, env=env, install=source.command)
    files: dict[str, str | bytes] = {str(path): data for path, data in source.files.items()}
    files |= {name: f"# conveyor is installed pinned to {source.pinned}.\n" + text for name, text in rendered.items()}
    root = (out or project.root).resolve()
    if root.exists() and not root.is_dir():
        raise ConveyorError(f"{root} is a file, not a folder", hint="Pass --out a folder (it is made if missing).")
    existing = [p for p, content in files.items() if (root / p).exists() and not _same(root / p, content)]
    if existing and not force:
        raise ConveyorError(f"{', '.join(existing)} already exist in {root}", hint="Pass --force to replace them.")
    written = []
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        written.append(target)
    return written
