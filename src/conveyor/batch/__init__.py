"""Batch scoring: a packaged model applied to a lake dataset, locally with Arrow or on Spark with `mapInArrow`."""

from conveyor.batch.datasets import DatasetFormat, InputDataset
from conveyor.batch.engines import DEFAULT_BATCH_ROWS, ENGINES, BatchEngine
from conveyor.batch.errors import BatchInputError, OutputExists, ScoringFailed
from conveyor.batch.job import BatchResult, model_package, score_batch, score_build
from conveyor.batch.progress import BatchProgress, NoProgress, ProgressUnit

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ENGINES",
    "BatchEngine",
    "BatchInputError",
    "BatchProgress",
    "BatchResult",
    "DatasetFormat",
    "InputDataset",
    "NoProgress",
    "OutputExists",
    "ProgressUnit",
    "ScoringFailed",
    "model_package",
    "score_batch",
    "score_build",
]
