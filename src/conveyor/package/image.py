"""The OCI image: a Containerfile for the package, an offline build context, and the saved OCI archive's digests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.package.engine import ContainerEngine

APP_DIR = "/app/package"
VENV = "/opt/conveyor"
PORT = 8080
INSTALLER = "install-runtime.py"

CONTAINERFILE = """\
# Made by conveyor build. Offline: every wheel comes from the build context, checked against the lock's hashes.
# pip runs from its own wheel in the bind mount, so neither pip nor the wheels stay in the image, and no shell is
# needed (the RUN is in exec form).
FROM {base}
# What the RUN installs (the lock, conveyor's own wheel, the installer): a layer cache keyed on the instructions
# alone would otherwise keep an older conveyor in the image after the wheel changed.
LABEL io.conveyor.runtime="{runtime}"
RUN --mount=type=bind,source=wheels,target=/tmp/conveyor-wheels ["python3", "/tmp/conveyor-wheels/{installer}"]
COPY package {app}
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    CONVEYOR_PACKAGE_DIR={app} CONVEYOR_MODEL_DIR={app}/model PYTHONUNBUFFERED=1 LANG=C.UTF-8
WORKDIR /app
EXPOSE {port}
ENTRYPOINT ["python", "-m", "conveyor.serving", "{app}", "--host", "0.0.0.0", "--port", "{port}"]
"""

# Runs inside the build with the base image's python3 (only the standard library): a virtual environment without
# pip, the locked wheels installed by pip run from its wheel, then byte-compiled except the packages' test suites.
INSTALL_RUNTIME = """\
import compileall, pathlib, py_compile, re, subprocess, sys, venv

wheels = pathlib.Path(__file__).parent
target = pathlib.Path("{venv}")
venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
python = str(target / "bin" / "python")
pip = [python, str(wheels / "{pip_wheel}" / "pip"), "install", "--quiet", "--no-index", "--no-cache-dir",
       "--disable-pip-version-check", "--no-compile", "--find-links", str(wheels)]
subprocess.run([*pip, "--require-hashes", "-r", str(wheels / "requirements.lock")], check=True)
subprocess.run([*pip, "--no-deps", str(wheels / "{wheel}")], check=True)
for script in (target / "bin").glob("activate*"):
    script.unlink()
site = next((target / "lib").glob("python3*/site-packages"))
compiled = compileall.compile_dir(
    str(site), quiet=1, rx=re.compile(r"[\\\\/]tests?[\\\\/]"),
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if compiled else 1)
"""


def render_containerfile(base: str, wheel_name: str, runtime: str = "") -> str:
    return CONTAINERFILE.format(base=base, venv=VENV, app=APP_DIR, port=PORT, installer=INSTALLER, runtime=runtime)


def runtime_digest(wheels: Path) -> str:
    """sha256 over what the image's RUN installs: the lock (which pins every other wheel by hash), conveyor's
    wheel, pip's wheel and the installer script, by name and content."""
    digest = hashlib.sha256()
    for path in sorted(wheels.iterdir()):
        if path.is_file() and (not path.name.endswith(".whl") or path.name.startswith(("conveyor-", "pip-"))):
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def render_installer(wheel_name: str, pip_wheel_name: str) -> str:
    return INSTALL_RUNTIME.format(venv=VENV, wheel=wheel_name, pip_wheel=pip_wheel_name)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def prepare_context(
    context: Path, package_dir: Path, wheels: Path, conveyor_wheel: Path, base: str, pip_wheel: Path
) -> Path:
    """The build context: Containerfile, package/, wheels/ (the locked wheels, the lock, conveyor's wheel, pip's
    wheel to install them with, and the script that does)."""
    if context.exists():
        shutil.rmtree(context)
    (context / "wheels").mkdir(parents=True)
    for wheel in sorted(wheels.glob("*.whl")):
        _link_or_copy(wheel, context / "wheels" / wheel.name)
    shutil.copyfile(package_dir / "requirements.lock", context / "wheels" / "requirements.lock")
    _link_or_copy(conveyor_wheel, context / "wheels" / conveyor_wheel.name)
    _link_or_copy(pip_wheel, context / "wheels" / pip_wheel.name)
    (context / "wheels" / INSTALLER).write_text(render_installer(conveyor_wheel.name, pip_wheel.name))
    shutil.copytree(package_dir, context / "package")
    containerfile = context / "Containerfile"
    runtime = runtime_digest(context / "wheels")
    containerfile.write_text(render_containerfile(base, conveyor_wheel.name, runtime))
    (context / ".containerignore").write_text("Containerfile\n")
    return containerfile


@dataclass(frozen=True)
class OciArchiveInfo:
    """The digests read from an OCI archive: the manifest's (the image digest) and the config's (the image id)."""

    digest: str
    config_digest: str


def read_oci_archive(archive: Path, check_blobs: bool = False) -> OciArchiveInfo:
    """Read index.json and the manifest of an OCI archive; with `check_blobs`, hash every blob against its name."""
    if not archive.is_file():
        raise CheckFailed(f"image archive {archive} is missing", hint="Rebuild with `conveyor build`.")
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

            def blob(digest: str) -> bytes:
                member = members.get("blobs/" + digest.replace(":", "/"))
                handle = tar.extractfile(member) if member else None
                if handle is None:
                    raise CheckFailed(f"image archive {archive} has no blob {digest}")
                return handle.read()

            index_handle = tar.extractfile(members["index.json"])
            index = json.loads(index_handle.read() if index_handle else b"{}")
            manifest_digest = index["manifests"][0]["digest"]
            manifest_bytes = blob(manifest_digest)
            problems = []
            if "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() != manifest_digest:
                problems.append(f"the manifest blob does not hash to {manifest_digest}")
            manifest = json.loads(manifest_bytes)
            config_digest = manifest["config"]["digest"]
            if check_blobs:
                for name, member in sorted(members.items()):
                    if not name.startswith("blobs/sha256/"):
                        continue
                    handle = tar.extractfile(member)
                    digest = hashlib.sha256()
                    while handle is not None and (block := handle.read(1 << 20)):
                        digest.update(block)
                    if digest.hexdigest() != name.rsplit("/", 1)[-1]:
                        problems.append(f"blob {name} does not hash to its name")
                wanted = [config_digest] + [layer["digest"] for layer in manifest.get("layers", [])]
                for digest_name in wanted:
                    if "blobs/" + digest_name.replace(":", "/") not in members:
                        problems.append(f"blob {digest_name} named by the manifest is missing")
    except (KeyError, IndexError, ValueError, tarfile.TarError) as exc:
        raise CheckFailed(f"{archive} is not a readable OCI archive ({exc})") from None
    if problems:
        raise CheckFailed(f"image archive {archive} is damaged:\n  " + "\n  ".join(problems))
    return OciArchiveInfo(digest=manifest_digest, config_digest=config_digest)


def build_image(
    engine: ContainerEngine, context: Path, containerfile: Path, reference: str, labels: dict[str, str], archive: Path
) -> OciArchiveInfo:
    """Build, then save once as an OCI archive; returns that archive's digests."""
    engine.build(context, containerfile, reference, labels)
    engine.save_oci_archive(reference, archive)
    return read_oci_archive(archive)
