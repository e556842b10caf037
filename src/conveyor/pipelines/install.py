"""How a rendered CI installs conveyor: pinned to the conveyor that rendered it, from a source a fresh runner
reaches.

- installed from a git URL (`pip install git+URL@REF`): that URL at the commit it resolved to;
- installed from a package index: that version;
- installed from a local checkout or a wheel file (which no runner reaches): its wheel (the one its images
  install, `conveyor.package.distribution`) is written into the project (`ci/wheels/`, to be committed with the CI
  files) and installed from there, its sha256 checked first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from conveyor.package.distribution import conveyor_wheel

WHEELS = Path("ci") / "wheels"
EXTRAS = "all"


@dataclass(frozen=True)
class InstallSource:
    """The install command a CI step runs, and the files it needs in the project (a vendored wheel)."""

    command: str
    files: dict[Path, bytes]  # project-relative path → content
    pinned: str  # one line saying what it is pinned to


def install_source(custom: str | None = None) -> InstallSource:
    """`custom` (a command of your own, e.g. from a private index) as given, else this conveyor, pinned."""
    if custom:
        return InstallSource(custom, {}, "your --install command")
    try:
        found = distribution("conveyor")
    except PackageNotFoundError:  # running from a source tree on sys.path
        return _wheel_file(conveyor_wheel())
    direct = json.loads(found.read_text("direct_url.json") or "null")
    if direct is None:
        return InstallSource(
            f'pip install "conveyor[{EXTRAS}]=={found.version}"', {}, f"conveyor {found.version} from the index"
        )
    vcs = direct.get("vcs_info")
    if vcs and vcs.get("commit_id"):
        url = f"{vcs.get('vcs', 'git')}+{direct['url']}@{vcs['commit_id']}"
        return InstallSource(f'pip install "conveyor[{EXTRAS}] @ {url}"', {}, f"commit {vcs['commit_id'][:12]}")
    return _wheel_file(conveyor_wheel())  # a checkout or a wheel file no runner reaches: its wheel, vendored


def _wheel_file(wheel: Path) -> InstallSource:
    data = wheel.read_bytes()
    relative = WHEELS / wheel.name
    digest = hashlib.sha256(data).hexdigest()
    # the committed wheel must be the one rendered: checked before it is installed
    command = f'echo "{digest}  {relative}" | sha256sum -c - && pip install "./{relative}[{EXTRAS}]"'
    return InstallSource(command, {relative: data}, f"{wheel.name} (sha256 {digest[:12]})")
