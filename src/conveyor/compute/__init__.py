"""Running a project's training script on the environment's compute: the `Compute` protocol and its engines.

The engines are listed in `conveyor.config.computes.COMPUTES` (local process, Spark local mode, a standalone
cluster, Spark Connect, a Databricks job run); `train` and `spark_session` dispatch through that table.
"""

from conveyor.compute.base import Compute, TrainingResult
from conveyor.compute.engines import compute_for, compute_named, spark_session, train

__all__ = ["Compute", "TrainingResult", "compute_for", "compute_named", "spark_session", "train"]
