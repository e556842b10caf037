"""How the CLI talks: rich messages on stderr, data (tables or --json) on stdout, errors as one paragraph."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from conveyor.secrets.boundaries import mask_json
from conveyor.secrets.redaction import redact

console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print `data` as JSON on stdout, secrets masked."""
    sys.stdout.write(json.dumps(mask_json(data), indent=2, sort_keys=True, default=lambda o: redact(str(o))) + "\n")


def say(message: str) -> None:
    console.print(redact(message))


def fail(message: str, hint: str | None = None) -> None:
    console.print(f"[bold red]error:[/] {redact(message)}", soft_wrap=True)
    if hint:
        console.print(f"[dim]{redact(hint)}[/]", soft_wrap=True)
