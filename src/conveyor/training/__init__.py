"""What a training script sees: `conveyor.context()`, answered by `conveyor train`'s own process (see `broker`)."""

from conveyor.training.context import TrainingContext, current_context

__all__ = ["TrainingContext", "current_context"]
