"""The runtime lock (`requirements.lock`, pinned with hashes) and the wheels it names, both cached by input hash.

The lock holds the model's requirements as MLflow recorded them (less MLflow itself: the package is served by
conveyor's server, not by MLflow) plus what the scoring server needs. Packages that neither pins are held to the
versions installed where conveyor runs, so the lock is the same from one day to the next and matches training.
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.package.cache import cache_dir, input_key

if TYPE_CHECKING:
    from collections.abc import Sequence

# What `python -m conveyor.serving` needs to answer requests, and nothing of the command line (typer, rich, pydantic)
SERVER_REQUIREMENTS = ("uvicorn", "httptools", "uvloop", "orjson", "prometheus-client")
DROPPED = ("mlflow", "mlflow-skinny")
TEST_TOOLS = ("pytest", "pytest-cov", "coverage")
PYTHON_VERSION = "3.11"
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def machine() -> str:
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def uv_binary() -> str:
    """The `uv` executable of the installed `uv` package, else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise ConveyorError("uv is not installed", hint="pip install uv (conveyor uses it to lock requirements).")


def requirement_lines(text: str) -> list[str]:
    """Requirement lines of a requirements.txt, without comments, options and the packages conveyor drops."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = NAME.match(line)
        if match and normalize(match.group(1)) in DROPPED:
            continue
        lines.append(line)
    return lines


def installed_constraints(exclude: set[str]) -> list[str]:
    """`name==version` for every distribution installed here, except `exclude` (normalized names)."""
    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or normalize(name) in exclude or normalize(name) == "conveyor":
            continue
        pins[normalize(name)] = f"{normalize(name)}=={dist.version}"
    return sorted(pins.values())


def run_tool(command: list[str], what: str, timeout: float = 900) -> str:
    """Run an external tool (uv, pip, skopeo, podman...) and return its stdout.

    A missing tool is a ConveyorError naming how to install it; a failure or a timeout is a CheckFailed naming
    `what` and the tail of the tool's output.
    """
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ConveyorError(
            f"{command[0]} is not installed; it is needed for {what}",
            hint=f"Install it (Debian: apt-get install {Path(command[0]).name}), or run "
            "scripts/install-system-deps.sh.",
        ) from None
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{what} failed: {command[0]} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr + result.stdout).strip().splitlines()[-12:])
        raise CheckFailed(f"{what} failed:\n{tail}", hint=f"The command was: {' '.join(command)}")
    return result.stdout


def pip_download(args: Sequence[str], dest: Path, what: str) -> None:
    """`pip download --quiet ARGS -d DEST` with this Python's pip; a failure is a CheckFailed naming `what`."""
    run_tool([sys.executable, "-m", "pip", "download", "--quiet", *args, "-d", str(dest)], what)


@dataclass(frozen=True)
class RequirementsLock:
    """The text of a requirements.lock; its digest keys the wheels it names."""

    text: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode()).hexdigest()


def lock_requirements(model_requirements: str, extra: tuple[str, ...] = SERVER_REQUIREMENTS) -> RequirementsLock:
    """Lock the model's requirements plus `extra` with `uv pip compile --generate-hashes` (cached by inputs)."""
    wanted = requirement_lines(model_requirements) + [r for r in extra if r]
    named = {normalize(m.group(1)) for line in wanted if (m := NAME.match(line))}
    constraints = installed_constraints(named)
    target = {"python": PYTHON_VERSION, "platform": f"{machine()}-manylinux_2_28"}
    key = input_key({"requirements": wanted, "constraints": constraints, "target": target, "tool": "uv-compile-1"})
    cached = cache_dir("locks") / f"{key}.lock"
    if cached.is_file():
        return RequirementsLock(cached.read_text())
    work = cache_dir("locks", "inputs", key)
    (work / "requirements.in").write_text("\n".join(wanted) + "\n")
    (work / "constraints.txt").write_text("\n".join(constraints) + "\n")
    output = work / "requirements.lock"
    run_tool(
        [
            uv_binary(),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-header",
            "--no-annotate",
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            target["platform"],
            "--only-binary",
            ":all:",
            "-c",
            str(work / "constraints.txt"),
            str(work / "requirements.in"),
            "-o",
            str(output),
        ],
        "locking the runtime requirements (uv pip compile)",
    )
    text = "# conveyor runtime lock: pinned with hashes; install with pip --require-hashes\n" + output.read_text()
    cached.write_text(text)
    return RequirementsLock(text)


def pip_platform_args() -> list[str]:
    return [
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--platform",
        f"manylinux_2_28_{machine()}",
        "--platform",
        f"manylinux2014_{machine()}",
    ]


def download_wheels(lock: RequirementsLock) -> Path:
    """The wheels the lock names (hash-checked by pip), downloaded once into the cache keyed by the lock."""
    folder = cache_dir("wheels", lock.digest.removeprefix("sha256:")[:32])
    done = folder / ".complete"
    if done.is_file():
        return folder
    lock_file = folder / "requirements.lock"
    lock_file.write_text(lock.text)
    pip_download(
        ["--no-deps", "--require-hashes", *pip_platform_args(), "-r", str(lock_file)],
        folder,
        "downloading the locked wheels (pip download)",
    )
    done.write_text("ok\n")
    return folder


def pip_wheel() -> Path:
    """pip's wheel (the version installed here): an image build runs pip from it to install the lock, so pip itself
    never lands in the image."""
    version = metadata.version("pip")
    folder = cache_dir("pip-wheel", version)
    found = sorted(folder.glob("pip-*.whl"))
    if not found:
        pip_download(["--no-deps", "--only-binary=:all:", f"pip=={version}"], folder, "downloading pip's wheel")
        found = sorted(folder.glob("pip-*.whl"))
    if not found:
        raise ConveyorError(f"no pip wheel was downloaded into {folder}")
    return found[0]


def test_tool_pins() -> list[str]:
    """pytest, pytest-cov and coverage at the versions installed here (or unpinned when absent)."""
    pins = []
    for name in TEST_TOOLS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def test_tools_dir() -> Path:
    """pytest + pytest-cov for the image's Python, unpacked into a folder to mount and put on PYTHONPATH."""
    pins = test_tool_pins()
    key = input_key({"pins": pins, "target": pip_platform_args()})[:32]
    folder = cache_dir("testtools", key)
    done = folder / ".complete"
    if done.is_file():
        return folder / "site"
    run_tool(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(folder / "site"),
            *pip_platform_args(),
            *pins,
        ],
        "fetching the test tools (pytest, pytest-cov) for the image",
    )
    done.write_text("ok\n")
    return folder / "site"
