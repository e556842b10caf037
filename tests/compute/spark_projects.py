"""Small projects written by tests: a conveyor.toml, a private secret file, a lake folder and a train.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

SCORE = "def init():\n    pass\n\n\ndef run(request):\n    return request\n"


def write_project(root: Path, train: str, secrets: dict[str, str], compute: str = "spark") -> Path:
    """A project with one environment `dev` whose lake is `${secret:datalake-fqdn}`."""
    root.mkdir(parents=True, exist_ok=True)
    store = root.parent / "dev-secrets.toml"
    store.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in secrets.items()))
    os.chmod(store, 0o600)
    (root / "conveyor.toml").write_text(
        '[project]\nname = "probe"\ncode = []\n\n'
        f'[environments.dev]\nsecrets = "file://{store}"\nlake = "${{secret:datalake-fqdn}}"\ncompute = "{compute}"\n'
    )
    (root / "train.py").write_text(train)
    (root / "score.py").write_text(SCORE)
    return root
