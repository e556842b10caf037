"""Build and release pipelines as code: named steps of conveyor commands, a local runner, CI renderers.

from conveyor.pipelines import run_pipeline, render_ci
run_pipeline(project.root, "build", {"env": "stage"})     # conveyor pipeline run build --env stage
render_ci(project, "github")                              # conveyor ci render github
"""

from conveyor.pipelines.ci import RENDERERS, render_ci
from conveyor.pipelines.definitions import PIPELINES, Pipeline, Step, find_pipeline, parse_parameters
from conveyor.pipelines.runner import PipelineRun, run_pipeline

__all__ = [
    "PIPELINES",
    "RENDERERS",
    "Pipeline",
    "PipelineRun",
    "Step",
    "find_pipeline",
    "parse_parameters",
    "render_ci",
    "run_pipeline",
]
