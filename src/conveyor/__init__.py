"""conveyor: carry analytical models from a notebook to the teams that consume them."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from conveyor.training.context import TrainingContext


def context() -> TrainingContext:
    """The training context of the running `conveyor train`: env, secrets, lake, metrics, model registration."""
    from conveyor.training.context import current_context

    return current_context()


__all__ = ["__version__", "context"]
