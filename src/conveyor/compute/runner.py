"""The process that runs a user's `train.py` with a training context (started by `conveyor train`).

It installs secret redaction, connects to `conveyor train`'s process over the channel it inherited, and runs the
script as `__main__`; the environment's compute (looked up in `COMPUTES`) makes the script's Spark session. It
loads no project, opens no store and imports no MLflow: what the script may have, the channel answers (see
`conveyor.training.broker`), and `conveyor train` registers the models after the script ends.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
import traceback

from conveyor.compute.engines import compute_named
from conveyor.secrets import redaction
from conveyor.training.channel import FD_VARIABLE, Client
from conveyor.training.context import TrainingContext, set_current_context
from conveyor.training.settings import RunSettings

RUNNER_FILES = (__file__, runpy.__file__, "<frozen runpy>")


def user_traceback(exc: BaseException) -> str:
    """The traceback from the user's script down, without conveyor's and runpy's frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename not in RUNNER_FILES]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def connect() -> tuple[Client, RunSettings]:
    """The channel to `conveyor train` (inherited as a file descriptor) and the run's settings."""
    descriptor = os.environ.pop(FD_VARIABLE, None)
    if descriptor is None:
        sys.stderr.write("error: conveyor.compute.runner is started by `conveyor train`, not by hand\n")
        raise SystemExit(2)
    client = Client(socket.socket(fileno=int(descriptor)))
    answer, _ = client.request("hello")
    return client, RunSettings.from_dict(answer["settings"])


def main() -> int:
    redaction.install()
    client, settings = connect()
    ctx = TrainingContext(client, settings, redaction.remember, compute_named(settings.compute).spark_session)
    set_current_context(ctx)
    script = settings.script
    sys.argv = [script, *settings.args]
    sys.path.insert(0, settings.root)
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            sys.stderr.write(f"{os.path.basename(script)} exited with status {exc.code}\n")
            return 1
    except BaseException as exc:  # the user's error, shown as theirs
        sys.stderr.write(user_traceback(exc))
        return 1
    finally:
        sys.stdout.flush()
    ctx.stop_spark()
    return 0


if __name__ == "__main__":
    sys.exit(main())
