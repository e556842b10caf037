"""Training on this machine: the script runs in a confined child (`conveyor.compute.child`), then this process
records its run and registers its models in the environment's MLflow registry (`conveyor.compute.recording`).

The `local` compute and the driver side of the Spark computes (the script is the Spark driver, or the Spark
Connect client) train this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.compute.base import TrainingResult, Writer
from conveyor.compute.child import confined_run
from conveyor.compute.recording import log_run, warm_registry
from conveyor.errors import CheckFailed

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conveyor.config import Environment


def run_training_process(environment: Environment, args: Sequence[str], out: Writer, err: Writer) -> TrainingResult:
    """Run the script on this machine and register what it asked for; `CheckFailed` if it fails."""
    with confined_run(environment, args, out, err, meanwhile=warm_registry) as run:
        if run.code != 0:
            log_run(environment, run, ok=False)
            raise CheckFailed(
                f"{Path(run.settings.script).name} failed in environment {environment.name!r} "
                f"(exit status {run.code}); nothing was registered",
                hint="The script's own traceback is above.",
            )
        run_id, registered = log_run(environment, run, ok=True)
    return TrainingResult(environment.name, run_id, registered, run.confinement.to_dict())
