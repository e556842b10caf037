"""Running a project's training script on the environment's compute (local subprocess, Spark)."""

from conveyor.compute.local import TrainingResult, train

__all__ = ["TrainingResult", "train"]
