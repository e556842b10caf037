"""`python -m conveyor.serving SOURCE [options]`: the same as `conveyor serve`, with nothing but the standard
library's argparse in front of `serve()` (an image's entry point: it needs none of the command line's packages).

Exit codes: 0 stopped by a signal, 2 bad usage or a source that cannot be served, 1 a failed check.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError
from conveyor.secrets.redaction import redact
from conveyor.serving.calls import Offload
from conveyor.serving.options import OPTION_HELP, ServeOptions
from conveyor.serving.sources import serve

if TYPE_CHECKING:
    from collections.abc import Sequence

WORKERS_ENV = "CONVEYOR_SERVE_WORKERS"


def parser() -> argparse.ArgumentParser:
    """One flag per `ServeOptions` field, with the help `conveyor serve` shows."""
    parse = argparse.ArgumentParser(
        prog="python -m conveyor.serving",
        description="Serve score.py over HTTP: /score, Open Inference Protocol v2, MLflow /invocations, health, "
        "metrics.",
    )
    parse.add_argument("source", help="Package directory, models:/NAME/VERSION, models:/NAME@ALIAS, or an image.")
    parse.add_argument("--env", "-e", help="Environment whose registry holds a models:/ URI.")
    defaults = ServeOptions()
    for field in dataclasses.fields(ServeOptions):
        if field.name == "preload":
            continue
        flag = f"--{field.name.replace('_', '-')}"
        default = getattr(defaults, field.name)
        if field.name == "reuse_port":
            parse.add_argument(flag, action="store_true", help=OPTION_HELP[field.name])
            continue
        kind: type = {bool: bool, int: int, float: float}.get(type(default), str)
        if field.name == "workers":
            kind = int
            env_value = os.environ.get(WORKERS_ENV)
            default = int(env_value) if env_value and env_value.isdigit() else None
        choices = [o.value for o in Offload] if field.name == "offload" else None
        parse.add_argument(flag, type=kind, default=default, choices=choices, help=OPTION_HELP[field.name])
    return parse


def options_from(args: argparse.Namespace) -> ServeOptions:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeOptions) if hasattr(args, f.name)}
    values["offload"] = Offload(values["offload"])
    return ServeOptions(**values)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)  # bad usage: argparse says why and exits 2
    try:
        serve(args.source, options_from(args), env=args.env, announce=lambda line: print(line, file=sys.stderr))
    except ConveyorError as exc:
        print(f"error: {redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(redact(exc.hint), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
