"""The container engine conveyor drives (podman, docker or buildah), set up so it works on this machine.

On most laptops the engine needs nothing from conveyor. Two machine conditions are handled here without the user
setting anything: a root process without CAP_SYS_RESOURCE (containers and CI sandboxes) cannot let podman raise
rlimits, so podman gets a containers.conf with `default_ulimits = []`; and crun refuses cgroups in hybrid mode, so
runc is chosen when it is installed and the host's cgroups are hybrid. A containers.conf the user points
CONTAINERS_CONF at is always respected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConveyorError
from conveyor.package.cache import cache_dir
from conveyor.package.lock import run_tool

if TYPE_CHECKING:
    from collections.abc import Sequence

ENGINES = ("podman", "docker", "buildah")
INSTALL_HINT = "Install one with scripts/install-container-engine.sh (podman, runc, skopeo, mmdebstrap) or your OS."
CAP_SYS_RESOURCE = 24


class EngineError(ConveyorError):
    """The chosen container engine is missing or does not work."""


class NoEngine(EngineError):
    """No container engine is installed or answering."""


def _cap_effective() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return -1


def lacks_rlimit_capability() -> bool:
    """True when running as root without CAP_SYS_RESOURCE: podman's default rlimits then cannot be set."""
    caps = _cap_effective()
    return hasattr(os, "geteuid") and os.geteuid() == 0 and caps >= 0 and not caps & (1 << CAP_SYS_RESOURCE)


def cgroups_hybrid() -> bool:
    """cgroup v1 controllers with a v2 `unified` mount beside them (crun refuses this layout)."""
    return Path("/sys/fs/cgroup/unified").is_dir() and Path("/sys/fs/cgroup/memory").is_dir()


def _system_sets_ulimits() -> bool:
    for path in (
        Path("/etc/containers/containers.conf"),
        *sorted(Path("/etc/containers/containers.conf.d").glob("*.conf")),
    ):
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if data.get("containers", {}).get("default_ulimits") == []:
            return True
    return False


def podman_configuration() -> tuple[dict[str, str], list[str]]:
    """Environment and global flags podman needs on this machine (empty on an ordinary laptop)."""
    env: dict[str, str] = {}
    flags: list[str] = []
    if cgroups_hybrid() and shutil.which("runc"):
        flags += ["--runtime", shutil.which("runc") or "runc"]
    if os.environ.get("CONVEYOR_STORAGE_DRIVER"):
        flags += ["--storage-driver", os.environ["CONVEYOR_STORAGE_DRIVER"]]
    if "CONTAINERS_CONF" not in os.environ and lacks_rlimit_capability() and not _system_sets_ulimits():
        conf = cache_dir("engine") / "containers.conf"
        text = (
            "# Written by conveyor: this process lacks CAP_SYS_RESOURCE, so containers keep the host's rlimits.\n"
            "[containers]\ndefault_ulimits = []\n"
        )
        if not conf.is_file() or conf.read_text() != text:
            conf.write_text(text)
        env["CONTAINERS_CONF"] = str(conf)
    return env, flags


@dataclass
class ContainerEngine:
    """One engine's command line, with the environment and flags it needs here."""

    name: str
    binary: str
    env: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    build_flags: list[str] = field(default_factory=list)  # e.g. ["--no-cache"]

    @property
    def can_run(self) -> bool:
        """buildah builds images but conveyor runs tests with podman or docker."""
        return self.name in ("podman", "docker")

    def command(self, *args: str) -> list[str]:
        return [self.binary, *self.flags, *args]

    def run(
        self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the engine; a failure is an EngineError carrying the last lines of its output."""
        result = subprocess.run(
            self.command(*args),
            env={**os.environ, **self.env},
            text=True,
            capture_output=capture,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            tail = "\n".join(((result.stdout or "") + (result.stderr or "")).strip().splitlines()[-15:])
            raise CheckFailed(
                f"{self.name} {args[0]} failed (exit status {result.returncode}):\n{tail}",
                hint=f"The command was: {' '.join(self.command(*args))}",
            )
        return result

    def image_id(self, reference: str) -> str | None:
        """`sha256:<config digest>` of a local image, or None when the engine does not have it."""
        args: tuple[str, ...] = ("inspect", "--type", "image", "--format", "{{.ID}}", reference)
        if self.name == "podman":
            args = ("image", "inspect", "--format", "{{.ID}}", reference)
        result = self.run(*args, check=False)
        if result.returncode != 0 or not result.stdout.strip():
            return None
        value = result.stdout.strip().splitlines()[0]
        return value if value.startswith("sha256:") else f"sha256:{value}"

    def has_image(self, reference: str) -> bool:
        return self.image_id(reference) is not None

    def pull(self, reference: str) -> bool:
        """Try to pull `reference`; False when it cannot be pulled (offline, unknown image)."""
        verb = ("pull",) if self.name != "buildah" else ("pull", "--quiet")
        return self.run(*verb, reference, check=False, timeout=600).returncode == 0

    def import_rootfs(self, tarball: Path, reference: str, changes: Sequence[str] = ()) -> None:
        """Make an image from a root filesystem tarball."""
        change_args = [arg for change in changes for arg in ("--change", change)]
        if self.name == "buildah":
            container = self.run("from", "scratch").stdout.strip()
            try:
                mount = self.run("mount", container).stdout.strip()
                run_tool(["tar", "-xf", str(tarball), "-C", mount], f"unpacking {tarball.name} for buildah")
                for change in changes:
                    key, _, value = change.partition(" ")
                    self.run("config", f"--{key.lower()}", value, container)
                self.run("commit", container, reference)
            finally:
                self.run("rm", container, check=False)
            return
        self.run("import", *change_args, str(tarball), reference)

    def build(self, context: Path, containerfile: Path, reference: str, labels: dict[str, str]) -> None:
        label_args = [arg for key, value in sorted(labels.items()) for arg in ("--label", f"{key}={value}")]
        extra = ["--pull=never"] if self.name != "docker" else []
        self.run(
            "build",
            *extra,
            *self.build_flags,
            "-f",
            str(containerfile),
            "-t",
            reference,
            *label_args,
            str(context),
            timeout=3600,
        )

    def save_oci_archive(self, reference: str, dest: Path) -> None:
        """Write the image as an OCI archive (the file a release pushes, with its manifest digest kept)."""
        dest.unlink(missing_ok=True)
        if self.name == "podman":
            self.run("save", "--format", "oci-archive", "-o", str(dest), reference, timeout=1800)
        elif self.name == "buildah":
            self.run("push", reference, f"oci-archive:{dest}", timeout=1800)
        else:
            skopeo = shutil.which("skopeo")
            if not skopeo:
                raise EngineError(
                    "saving a docker image as an OCI archive needs skopeo, which is not installed",
                    hint="Install skopeo (apt-get install skopeo, brew install skopeo), or use --engine podman.",
                )
            run_tool(
                [skopeo, "copy", f"docker-daemon:{reference}", f"oci-archive:{dest}"],
                f"saving {reference} as an OCI archive (skopeo copy)",
                timeout=1800,
            )

    def load_oci_archive(self, archive: Path, reference: str) -> None:
        """Put an OCI archive back into the engine's storage under `reference`."""
        if self.name == "podman":
            loaded = self.run("load", "--quiet", "-i", str(archive), timeout=1800).stdout
            if not self.has_image(reference):
                names = [line.split(":", 1)[1].strip() for line in loaded.splitlines() if line.startswith("Loaded")]
                if names:
                    self.run("tag", names[0].split(",")[0], reference)
            return
        skopeo = shutil.which("skopeo")
        if not skopeo:
            raise EngineError("loading an OCI archive into docker needs skopeo", hint="Install skopeo.")
        run_tool(
            [skopeo, "copy", f"oci-archive:{archive}", f"docker-daemon:{reference}"],
            f"loading {archive.name} into docker as {reference} (skopeo copy)",
            timeout=1800,
        )

    def remove_image(self, reference: str) -> None:
        self.run("rmi", "--force", reference, check=False)

    def describe(self) -> str:
        version = self.run("--version", check=False).stdout.strip()
        return version or self.name


def _docker_answers(binary: str) -> tuple[bool, str]:
    try:
        result = subprocess.run(
            [binary, "info", "--format", "{{json .ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return False, "docker info did not answer within 20 s"
    message = (result.stderr or result.stdout).strip().splitlines()
    return result.returncode == 0, message[-1] if message else ""


def _make(name: str, binary: str) -> ContainerEngine:
    if name == "podman":
        env, flags = podman_configuration()
        return ContainerEngine(name, binary, env, flags)
    if name == "buildah":
        env, _ = podman_configuration()
        flags = (
            ["--storage-driver", os.environ["CONVEYOR_STORAGE_DRIVER"]]
            if os.environ.get("CONVEYOR_STORAGE_DRIVER")
            else []
        )
        return ContainerEngine(name, binary, env, flags)
    return ContainerEngine(name, binary, {"DOCKER_BUILDKIT": "1"})  # RUN --mount needs BuildKit


@cache
def _probe(name: str, binary: str) -> tuple[bool, str]:
    if name == "docker":
        return _docker_answers(binary)
    engine = _make(name, binary)
    args = ("info", "--format", "json") if name == "podman" else ("info",)
    try:
        result = engine.run(*args, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return False, f"{name} info did not answer within 60 s"
    lines = (result.stderr or "").strip().splitlines()
    if result.returncode == 0 and name == "podman":
        try:
            json.loads(result.stdout)
        except ValueError:
            return False, "podman info printed no JSON"
    return result.returncode == 0, lines[-1] if lines else ""


def find_engine(choice: str | None = None) -> ContainerEngine:
    """The engine named by `choice` (podman, docker, buildah), or the first one installed that works.

    Raises EngineError when the chosen one is missing or broken, NoEngine when none is there at all.
    """
    choice = choice or os.environ.get("CONVEYOR_ENGINE") or None
    if choice:
        if choice not in ENGINES:
            raise EngineError(f"unknown container engine {choice!r}", hint=f"Choose one of: {', '.join(ENGINES)}.")
        binary = shutil.which(choice)
        if not binary:
            raise EngineError(f"--engine {choice}: {choice} is not installed (not on PATH)", hint=INSTALL_HINT)
        works, why = _probe(choice, binary)
        if not works:
            if choice == "docker":
                raise EngineError(
                    f"--engine docker: the docker client is installed but no Docker daemon answers ({why})",
                    hint="Start Docker (systemctl start docker, or Docker Desktop), or use --engine podman, "
                    "which needs no daemon.",
                )
            raise EngineError(f"--engine {choice}: {choice} does not work here ({why})", hint=INSTALL_HINT)
        return _make(choice, binary)
    problems = []
    for name in ENGINES:
        binary = shutil.which(name)
        if not binary:
            continue
        works, why = _probe(name, binary)
        if works:
            return _make(name, binary)
        problems.append(f"{name}: {why}")
    found = f" ({'; '.join(problems)})" if problems else ""
    raise NoEngine(f"no working container engine found{found}", hint=INSTALL_HINT)
