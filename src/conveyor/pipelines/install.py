"""How a rendered CI installs conveyor: pinned to the conveyor that rendered it, from a source a fresh runner
reaches.

- installed from a git URL (`pip install git+URL@REF`): that URL at the commit it resolved to;
- installed from a package index: that version;
- installed from a local checkout or a wheel file (which no runner reaches): a wheel of it is written into the
  project (`ci/wheels/`, to be committed with the CI files) and installed from there, its sha256 checked first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import unquote, urlparse

from conveyor.errors import ConveyorError

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
        return _vendored(Path(__file__).resolve().parents[3])
    direct = json.loads(found.read_text("direct_url.json") or "null")
    if direct is None:
        return InstallSource(
            f'pip install "conveyor[{EXTRAS}]=={found.version}"', {}, f"conveyor {found.version} from the index"
        )
    vcs = direct.get("vcs_info")
    if vcs and vcs.get("commit_id"):
        url = f"{vcs.get('vcs', 'git')}+{direct['url']}@{vcs['commit_id']}"
        return InstallSource(f'pip install "conveyor[{EXTRAS}] @ {url}"', {}, f"commit {vcs['commit_id'][:12]}")
    location = Path(unquote(urlparse(direct["url"]).path))
    if location.is_file() and location.suffix == ".whl":
        return _wheel_file(location)
    return _vendored(location)


def _wheel_file(wheel: Path) -> InstallSource:
    data = wheel.read_bytes()
    relative = WHEELS / wheel.name
    digest = hashlib.sha256(data).hexdigest()
    # the committed wheel must be the one rendered: checked before it is installed
    command = f'echo "{digest}  {relative}" | sha256sum -c - && pip install "./{relative}[{EXTRAS}]"'
    return InstallSource(command, {relative: data}, f"{wheel.name} (sha256 {digest[:12]})")


def _vendored(source: Path) -> InstallSource:
    return _wheel_file(build_wheel(source))


@functools.cache
def build_wheel(source: Path) -> Path:
    """A wheel of the conveyor checkout at `source` (built once per process, into a temporary folder)."""
    if not (source / "pyproject.toml").is_file():
        raise ConveyorError(
            f"conveyor runs here from {source}, which a CI runner cannot reach, and it is no source tree to build a "
            "wheel from",
            hint="Pass --install with a pinned source, e.g. --install "
            "'pip install \"conveyor[all] @ git+https://github.com/ORG/conveyor@COMMIT\"'.",
        )
    out = Path(tempfile.mkdtemp(prefix="conveyor-wheel-"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(out.glob("conveyor-*.whl"))
    if done.returncode != 0 or not wheels:
        shutil.rmtree(out, ignore_errors=True)
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was written"]
        raise ConveyorError(
            f"cannot build a wheel of conveyor from {source} for CI to install: {why[0]}",
            hint="Pass --install with a pinned source CI reaches (a git URL at a commit, or a version on your index).",
        )
    return wheels[0]
