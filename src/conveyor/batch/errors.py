"""What goes wrong in a batch job, each with its exit code: bad input is usage (2), a model that breaks is 1."""

from __future__ import annotations

from conveyor.errors import ConveyorError


class BatchInputError(ConveyorError):
    """The input dataset cannot be scored: unknown format, unreadable, or a column the model needs is missing."""


class OutputExists(ConveyorError):
    """The output path already holds something and `--overwrite` was not given."""


class ScoringFailed(ConveyorError):
    """score.py raised, or returned predictions that do not fit the rows."""

    exit_code = 1
