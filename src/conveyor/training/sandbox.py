"""Where the OS allows it, the training child runs in a bubblewrap sandbox that shows it only what it needs.

Visible, read-only: the system (/usr, /etc, the libraries), the Python installation conveyor runs on, and the
project folder. Writable: the run's own folders (ctx.output_dir, a temp folder, a home). Everything else of the
machine is not there at all: the secret store files of every environment and of the gate step, the lakes (the
script reads its lake through `conveyor train`'s process, which records each read), the project's `.conveyor/`
(registries, builds, the ledger), the user's home with its cloud credentials, other processes. With local
compute the network is off too, so no data reaches the script except through the recorded lake.

Where bubblewrap is missing or namespaces are not allowed, the script runs unconfined and `conveyor train` says
so plainly; `[training] sandbox = "required"` refuses that instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config.computes import compute_of
from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from conveyor.config import Environment

BWRAP = "bwrap"
INSTALL_HINT = "Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
PROBE = ("--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true")
SYSTEM_DIRS = ("/usr", "/etc", "/sys")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d")


@dataclass(frozen=True)
class Confinement:
    """How a training child ran: in a sandbox or not (and why not), with or without network."""

    sandbox: str  # "bubblewrap" or "none"
    network: bool
    reason: str | None = None

    @property
    def sandboxed(self) -> bool:
        return self.sandbox != "none"

    def to_dict(self) -> dict[str, object]:
        return {"sandbox": self.sandbox, "network": self.network, "reason": self.reason}

    def notice(self) -> str | None:
        """The plain warning an unconfined run prints (None when sandboxed)."""
        if self.sandboxed:
            return None
        return (
            f"train.py ran WITHOUT a sandbox ({self.reason}): it could read any file this user can, including "
            "other environments' secret files, the gate store and the lake itself without the read being recorded. "
            f'{INSTALL_HINT}, or set [training] sandbox = "required" to refuse such runs.'
        )


@cache
def unavailable_reason() -> str | None:
    """Why bubblewrap cannot sandbox here (not installed, not Linux, namespaces refused), or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"namespaces are Linux-only and this is {sys.platform}"
    binary = shutil.which(BWRAP)
    if binary is None:
        return "bubblewrap is not installed"
    try:
        probe = subprocess.run(
            [binary, *PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not start ({type(exc).__name__})"
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["no reason given"])[0]
        return f"bubblewrap cannot create namespaces here: {first}"
    return None


@cache
def python_paths() -> tuple[Path, ...]:
    """The folders this Python needs: its prefixes and the sys.path of a fresh interpreter (site-packages, .pth
    entries such as an editable conveyor), without the current folder."""
    fresh = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", os.defpath)},
        timeout=60,
        check=True,
    )
    entries = [p for p in json.loads(fresh.stdout) if p]
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    executable = Path(sys.executable)
    candidates = [*entries, *prefixes, str(executable.parent), str(executable.resolve().parent.parent)]
    found = []
    for candidate in candidates:
        path = Path(candidate)
        if path.exists() and path != Path("/") and path not in found:
            found.append(path)
    return tuple(found)


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


@dataclass
class SandboxPlan:
    """What the sandbox shows: read-only and writable folders, what is hidden inside them, and the network."""

    read_only: list[Path] = field(default_factory=list)
    writable: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)
    network: bool = False
    workdir: Path = Path("/")

    def command(self, argv: list[str]) -> list[str]:
        """`bwrap ... argv`; every hidden path that a visible folder would show is covered."""
        binary = shutil.which(BWRAP) or BWRAP
        args = [binary, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not self.network:
            args.append("--unshare-net")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args += ["--cap-drop", "ALL"]
        for name in SYSTEM_DIRS:
            if os.path.isdir(name):
                args += ["--ro-bind", name, name]
        for name in SYSTEM_LINKS:
            if os.path.islink(name):
                args += ["--symlink", os.readlink(name), name]
            elif os.path.isdir(name):
                args += ["--ro-bind", name, name]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp", "--tmpfs", "/run"]  # noqa: S108 -- fresh tmpfs mounts inside the bwrap sandbox
        for path in self.read_only:
            args += ["--ro-bind", str(path), str(path)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        shown = [Path(p) for p in SYSTEM_DIRS] + self.read_only + self.writable
        for path in [*map(Path, SYSTEM_SECRETS), *self.hidden]:
            if not _inside(path, shown) or not (path.exists() or path.is_symlink()):
                continue
            if path.is_dir() and not path.is_symlink():
                args += ["--tmpfs", str(path)]
            else:
                args += ["--ro-bind", "/dev/null", str(path)]
        return [*args, "--chdir", str(self.workdir), *argv]


def confinement_for(environment: Environment) -> Confinement:
    """Whether this run can be sandboxed; refuses when `[training] sandbox = "required"` and it cannot."""
    network = compute_of(environment.compute).network
    reason = unavailable_reason()
    if reason is None:
        return Confinement("bubblewrap", network)
    if environment.project.config.training.sandbox == "required":
        raise ConfigError(
            f"refusing to train in {environment.name!r}: the project requires a sandbox and {reason}",
            hint=f'{INSTALL_HINT}, or run where Linux namespaces are allowed ([training] sandbox = "required").',
        )
    return Confinement("none", True, reason)


def plan_for(environment: Environment, run_folders: list[Path], confinement: Confinement) -> SandboxPlan:
    """The sandbox of a training run of `environment`: project and Python read-only, the run's folders writable,
    every secret store file, lake and the project's state hidden."""
    project = environment.project
    read_only = [*python_paths(), project.root]
    for name in ("JAVA_HOME", "SPARK_HOME"):
        if os.environ.get(name) and Path(os.environ[name]).is_dir():
            read_only.append(Path(os.environ[name]).resolve())
    own_lake = _local_lake(environment)
    spark = compute_of(environment.compute).spark
    if spark and own_lake is not None:
        read_only.append(own_lake)  # Spark reads the lake by URL (each read recorded through ctx.spark_url)
    hidden = [project.state_dir, *secret_files(environment), *ignored_paths(project.root)]
    for name in project.config.environments:
        lake = _local_lake(project.environment(name))
        if lake is not None and not (spark and lake == own_lake):
            hidden.append(lake)
    needed = python_paths()
    hidden = [path for path in hidden if not any(path == p or path in p.parents for p in needed)]
    return SandboxPlan(
        read_only=read_only,
        writable=list(run_folders),
        hidden=hidden,
        network=confinement.network,
        workdir=project.root,
    )


def ignored_paths(root: Path) -> list[Path]:
    """What git ignores in the project (data dumps, local stores, caches): hidden, since lineage records only the
    commit and whether the work tree differs from it. Empty outside a git repository."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"],
            cwd=root,
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = listed.decode("utf-8", "surrogateescape").split("\0")
    return [root / name.rstrip("/") for name in names if name]


def secret_files(environment: Environment) -> list[Path]:
    """The files of every `file://` secret store the project names (each environment's and the gate step's)."""
    from conveyor.secrets.file import path_from_url

    project = environment.project
    urls = []
    for name in project.config.environments:
        try:
            urls.append(project.environment(name).secrets_url)
        except ConveyorError:
            continue
    with contextlib.suppress(ConveyorError):
        urls.append(project.gates.secrets_url)
    urls += [value for key, value in os.environ.items() if key.startswith("CONVEYOR_SECRETS_")]
    return [path_from_url(url, project.root) for url in urls if url.lower().startswith("file://")]


def _local_lake(environment: Environment) -> Path | None:
    """The folder of a `file://` lake (None for cloud lakes, or when this process cannot resolve the URL)."""
    try:
        url = environment.lake_url
    except ConveyorError:
        return None
    if not url.lower().startswith("file://"):
        return None
    from conveyor.lake import parse_lake_url

    return Path(parse_lake_url(url, environment.project.root).root)
