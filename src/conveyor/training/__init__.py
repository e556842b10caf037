"""What a training script sees: `conveyor.context()`."""

from conveyor.training.context import PendingRegistration, TrainingContext, current_context

__all__ = ["PendingRegistration", "TrainingContext", "current_context"]
