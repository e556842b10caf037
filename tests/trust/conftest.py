"""Keys of every type OpenSSH makes, for the cross-checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from openssh_tools import KEY_TYPES


@pytest.fixture(scope="module")
def typed_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one key of each supported type, named as KEY_TYPES, and an allowed_signers listing them."""
    folder = tmp_path_factory.mktemp("typed-keys")
    lines = []
    for name, args in KEY_TYPES.items():
        subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", name, "-f", str(folder / name)], check=True)
        lines.append(f"{name} {(folder / f'{name}.pub').read_text().strip()}")
    (folder / "allowed_signers").write_text("\n".join(lines) + "\n")
    return folder
