"""Base images: the configured one (python:3.11-slim by default) or, where nothing can be pulled, one made from
Debian packages with mmdebstrap and cached by its inputs: the serving runtime (`RUNTIME`: Python and CA
certificates, no shell) or, for Containerfiles that need a shell and apt, `FULL`."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.package.cache import cache_dir, input_key
from conveyor.package.engine import ContainerEngine, EngineError

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, matching the locked cp311 wheels
LOCAL_REPOSITORY = "localhost/conveyor-python"
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/merged-usr"  # /bin -> usr/bin without the usrmerge package (and perl)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DebianRecipe:
    """How mmdebstrap makes one kind of base image: its variant, the packages asked for, and the hooks that finish
    the root filesystem (`$1` is its path)."""

    name: str
    variant: str
    packages: tuple[str, ...]
    hooks: tuple[tuple[str, str], ...]  # (stage, shell command), stage is "extract" or "customize"


_TRIM = 'rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/usr/share/info/*'

# The serving runtime: CPython 3.11 with its standard library, the C++ runtime and CA certificates, unpacked from
# Debian's packages with no shell, package manager or perl. The hooks do what the packages' install scripts would
# have done.
RUNTIME = DebianRecipe(
    name="runtime",
    variant="extract",
    # libstdc++6: the manylinux policy lets wheels (numpy, scipy, ...) rely on it being there
    packages=("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "ca-certificates"),
    hooks=(
        ("extract", _TRIM),
        ("extract", 'ln -sf python3.11 "$1/usr/bin/python3"'),
        (
            "extract",
            'mkdir -p "$1/etc/ssl/certs" && '
            'cat "$1"/usr/share/ca-certificates/mozilla/*.crt > "$1/etc/ssl/certs/ca-certificates.crt"',
        ),
        (
            "extract",
            'printf "root:x:0:0:root:/root:/usr/sbin/nologin\\nnobody:x:65534:65534:nobody:/nonexistent:'
            '/usr/sbin/nologin\\n" > "$1/etc/passwd" && printf "root:x:0:\\nnogroup:x:65534:\\n" > "$1/etc/group" '
            '&& mkdir -p -m 1777 "$1/tmp" && mkdir -p -m 0700 "$1/root"',
        ),
        (
            "extract",
            'chroot "$1" /usr/bin/python3 -m compileall -q --invalidation-mode unchecked-hash /usr/lib/python3.11',
        ),
    ),
)

# A Debian system with python3, venv and a shell (the essential set and apt): for Containerfiles that need RUN.
FULL = DebianRecipe(
    name="full",
    variant="apt",
    packages=("python3", "python3-venv", "ca-certificates"),
    hooks=(
        ("customize", _TRIM),
        ("customize", 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'),
    ),
)
DEBIAN_PACKAGES = RUNTIME.packages


def requested_base_image(value: str | None = None) -> str:
    return value or os.environ.get("CONVEYOR_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def _mmdebstrap_version(binary: str) -> str:
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def debian_base_reference(suite: str = DEBIAN_SUITE, recipe: DebianRecipe = RUNTIME) -> tuple[str, str]:
    """(image reference, cache key) of the Debian base image for these inputs."""
    binary = shutil.which("mmdebstrap")
    key = input_key(
        {
            "suite": suite,
            "recipe": dataclasses.asdict(recipe),
            "tool": _mmdebstrap_version(binary) if binary else "mmdebstrap",
        }
    )
    tag = suite if recipe is RUNTIME else f"{suite}-{recipe.name}"
    return f"{LOCAL_REPOSITORY}:{tag}-{key[:12]}", key


def mmdebstrap_command(binary: str, suite: str, recipe: DebianRecipe, target: Path) -> list[str]:
    command = [binary, f"--variant={recipe.variant}", "--format=tar", f"--include={','.join(recipe.packages)}"]
    if Path(MERGED_USR_HOOKS).is_dir():
        command.append(f"--hook-dir={MERGED_USR_HOOKS}")
    if recipe.variant != "extract":
        for path in ("doc", "man", "locale", "info"):
            command.append(f"--dpkgopt=path-exclude=/usr/share/{path}/*")
    command += [f"--{stage}-hook={hook}" for stage, hook in recipe.hooks]
    return [*command, suite, str(target)]


def build_debian_base(
    engine: ContainerEngine,
    suite: str = DEBIAN_SUITE,
    force: bool = False,
    progress: Progress | None = None,
    recipe: DebianRecipe = RUNTIME,
) -> str:
    """Make (or reuse) a Python base image from Debian packages; returns its reference.

    The root filesystem tarball is cached in conveyor's cache folder keyed by suite, recipe and mmdebstrap's
    version, so a machine makes it once and imports it again in seconds.
    """
    say = progress or (lambda _message: None)
    binary = shutil.which("mmdebstrap")
    if not binary:
        raise EngineError(
            "mmdebstrap is not installed, so no base image can be made from Debian packages",
            hint="Install it (apt-get install mmdebstrap, or scripts/install-container-engine.sh), or pass "
            "--base-image with an image your engine already has.",
        )
    reference, key = debian_base_reference(suite, recipe)
    if not force and engine.has_image(reference):
        return reference
    folder = cache_dir("base-images", key[:32])
    tarball = folder / "rootfs.tar"
    if force or not tarball.is_file():
        say(f"making a {suite} root filesystem with {', '.join(recipe.packages)} (mmdebstrap, about a minute)")
        partial = folder / "rootfs.tar.partial"
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
        command = mmdebstrap_command(binary, suite, recipe, partial)
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-10:])
            raise EngineError(
                f"mmdebstrap failed to make the {suite} base image:\n{tail}",
                hint="It needs Debian's package mirror and root (or unshare) rights.",
            )
        partial.replace(tarball)
    say(f"importing the base image as {reference}")
    engine.import_rootfs(
        tarball,
        reference,
        changes=[
            "ENV LANG=C.UTF-8",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["python3"]',
        ],
    )
    return reference


def ensure_base_image(engine: ContainerEngine, requested: str | None, progress: Progress | None = None) -> str:
    """The base image to build on: `requested` if the engine has it or can pull it; when the default cannot be
    pulled, the Debian-made one (made now if needed, with a message saying so)."""
    say = progress or (lambda _message: None)
    reference = requested_base_image(requested)
    if engine.has_image(reference):
        return reference
    if reference.startswith(f"{LOCAL_REPOSITORY}:"):
        raise EngineError(
            f"base image {reference} is not in {engine.name}'s storage",
            hint="Make it with `conveyor base-image build`.",
        )
    say(f"pulling base image {reference}")
    if engine.pull(reference):
        return reference
    if reference != DEFAULT_BASE_IMAGE:
        raise EngineError(
            f"base image {reference} cannot be pulled (no registry reachable?) and {engine.name} does not have it",
            hint="Run `conveyor base-image build` and pass the reference it prints with --base-image, "
            "or make the image available to the engine.",
        )
    local, _ = debian_base_reference()
    say(
        f"cannot pull {reference}: using a base image made from Debian packages instead ({local}); "
        "`conveyor base-image build` makes it ahead of time"
    )
    try:
        return build_debian_base(engine, progress=progress)
    except EngineError as error:
        raise ConveyorError(
            f"cannot pull {reference}, and no local base image could be made: {error.message}",
            hint=error.hint or "Run `conveyor base-image build`, or pass --base-image with a local image.",
        ) from None
