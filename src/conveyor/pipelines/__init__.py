"""Build and release pipelines as code: named steps of conveyor commands, a local runner, CI renderers."""

from conveyor.pipelines.definitions import PIPELINES, Pipeline, Step
from conveyor.pipelines.runner import PipelineRun, run_pipeline

__all__ = ["PIPELINES", "Pipeline", "PipelineRun", "Step", "run_pipeline"]
