"""The pipelines: each step is a conveyor command a person can run; `{step.key}` takes an earlier step's JSON.

The build pipeline is what CI runs on a merge to main (the lab's build pipeline): train on stage, build the
package and image, test what ships, run the gates, publish the reports. The release pipeline takes a build to QA
at once and requests production, which waits for `conveyor approve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.config import Project


class Store(StrEnum):
    """A secret store a step may be handed in CI: the environment's, or the gate step's own."""

    ENVIRONMENT = "environment"
    GATES = "gates"


@dataclass(frozen=True)
class Step:
    """One command of a pipeline. `json` steps print JSON that later steps refer to as `{name.key.0.key}`.

    In CI a step is handed only the secrets it needs: the stores in `stores`, and the builder's signing key
    when it `signs` (so the training step, which runs the project's own code, sees neither the key nor the
    sealed set's store).
    """

    name: str
    title: str
    args: tuple[str, ...]
    json: bool = False
    publishes: tuple[str, ...] = ()
    stores: tuple[Store, ...] = (Store.ENVIRONMENT,)
    signs: bool = False


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    steps: tuple[Step, ...]
    parameters: dict[str, str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


BUILD = Pipeline(
    name="build",
    description="Train on the environment (stage in CI), build the package and image, test it, run the gates.",
    parameters={"env": "environment to train and build in (CI: stage)"},
    steps=(
        Step("secrets", "check the environment's secrets", ("secrets", "check", "--env", "{env}")),
        Step(
            "gate-secrets",
            "check the gate step's own store (the sealed set's location)",
            ("secrets", "check", "--env", "gates"),
            stores=(Store.GATES,),
        ),
        Step("train", "train on the environment's lake", ("train", "--env", "{env}"), json=True),
        Step(
            "build",
            "build the package and image of the model just trained",
            ("build", "--env", "{env}", "--model", "{train.registered.0.name}/{train.registered.0.version}"),
            json=True,
            signs=True,
        ),
        Step(
            "test",
            "run the project's tests against the built package",
            ("test", "{build.package.digest}", "--env", "{env}"),
            publishes=("results/junit.xml", "results/coverage.xml", "results/htmlcov"),
            signs=True,
        ),
        Step(
            "gate",
            "quality gates on the sealed evaluation set",
            ("gate", "{build.package.digest}", "--env", "{env}"),
            stores=(Store.ENVIRONMENT, Store.GATES),
            signs=True,
        ),
        Step(
            "verify",
            "verify every digest of the build record",
            ("verify", "{build.path}"),
            publishes=("{build.path}",),
        ),
    ),
)

RELEASE = Pipeline(
    name="release",
    description="Release a tested build to QA at once, then request production (deploys after approval).",
    parameters={"build": "build.json path or package digest (CI: the build pipeline's artifact)"},
    steps=(
        Step(
            "qa",
            "release to QA (no approval needed)",
            ("release", "create", "{build}", "--to", "qa"),
            json=True,
            stores=(),
            signs=True,
        ),
        Step(
            "prod",
            "request production (waits for approval)",
            ("release", "promote", "{qa.id}", "--to", "prod"),
            json=True,
            stores=(),
            signs=True,
        ),
    ),
)

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (BUILD, RELEASE)}


def find_pipeline(name: str, project: Project | None = None) -> Pipeline:
    """The pipeline called `name`, with the steps `project` adds (`[pipelines.build.score_batch]`); an unknown
    name is refused with the known ones."""
    if name not in PIPELINES:
        raise ConveyorError(f"there is no pipeline {name!r}", hint=f"Pipelines: {', '.join(PIPELINES)}.")
    pipeline = PIPELINES[name]
    batch = project.config.pipelines.build.score_batch if project is not None and name == "build" else None
    if batch is not None:
        step = Step(
            "score-batch",
            f"score {batch.input} with the package just built, tested and gated",
            (
                "score-batch",
                "--build",
                "{build.path}",
                "--env",
                "{env}",
                "--input",
                batch.input,
                "--output",
                batch.output,
                "--engine",
                str(batch.engine),
                "--overwrite",
            ),
            json=True,
        )
        pipeline = replace(pipeline, steps=(*pipeline.steps, step))
    return pipeline


def parse_parameters(items: list[str] | None) -> dict[str, str]:
    """`["env=stage", ...]` → `{"env": "stage"}`; anything not KEY=VALUE is refused."""
    parameters = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConveyorError(f"--param {item!r} is not KEY=VALUE", hint="For example: --param env=stage")
        parameters[key] = value
    return parameters
