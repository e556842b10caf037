"""Where a release goes: an OCI registry (`oci://HOST/REPO`) or a local server (`local://PORT`).

Every step is idempotent, so a deployment killed half-way can run its remaining steps again safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from conveyor.errors import CheckFailed, ConfigError, ConveyorError
from conveyor.package.record import BuildRecord, ImageSection
from conveyor.release.tools import run_tool

if TYPE_CHECKING:
    from conveyor.package.engine import ContainerEngine

READY_PATH = "/health/ready"
CONTAINER_PORT = 8080
ENGINE_VARIABLE = "CONVEYOR_ENGINE"
READY_TIMEOUT_VARIABLE = "CONVEYOR_READY_TIMEOUT"
INSECURE_HOSTS = ("localhost", "127.", "[::1]")


@dataclass(frozen=True)
class DeployContext:
    """What a step needs: the project, stage, release id and build, and the details of earlier steps."""

    project_name: str
    state_dir: Path
    stage: str
    release_id: int
    build: BuildRecord
    done: dict[str, dict[str, Any]]


class Target(Protocol):
    url: str

    def steps(self) -> list[str]: ...

    def run_step(self, name: str, context: DeployContext) -> dict[str, Any]: ...


def release_tag(context: DeployContext) -> str:
    """The image tag of a release: model version and release id, e.g. `v3-r12` (docker tag syntax)."""
    version = context.build.model.version if context.build.model else None
    return f"v{version}-r{context.release_id}" if version else f"r{context.release_id}"


def _require_image(context: DeployContext) -> ImageSection:
    image = context.build.image
    if not image:
        raise CheckFailed(
            f"build {context.build.short} has no image archive, so it cannot go to {context.stage}",
            hint="Build the image with `conveyor build` (needs podman or docker).",
        )
    return image


class OciTarget:
    """Push the tested image archive by digest to HOST/REPO, then read the digest back from the registry."""

    def __init__(self, url: str) -> None:
        self.url = url
        location = url.removeprefix("oci://").strip("/")
        host, _, repo = location.partition("/")
        if not host or not repo:
            raise ConfigError(f"release target {url!r} must be oci://HOST[:PORT]/REPO")
        self.host, self.repo = host, repo
        self.insecure = host.startswith(INSECURE_HOSTS)

    def steps(self) -> list[str]:
        return ["push", "check-digest"]

    def reference(self, context: DeployContext) -> str:
        return f"{self.host}/{self.repo}:{release_tag(context)}"

    def run_step(self, name: str, context: DeployContext) -> dict[str, Any]:
        image = _require_image(context)
        reference = self.reference(context)
        if name == "push":
            args = ["skopeo", "copy", "--quiet", "--preserve-digests"]
            if self.insecure:
                args.append("--dest-tls-verify=false")
            run_tool([*args, f"oci-archive:{image.archive}", f"docker://{reference}"], f"push to {reference}")
            return {"reference": reference}
        if name == "check-digest":
            args = ["skopeo", "inspect", "--raw"]
            if self.insecure:
                args.append("--tls-verify=false")
            raw = run_tool([*args, f"docker://{reference}"], f"read back {reference}")
            pushed = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
            if pushed != image.digest:
                raise CheckFailed(
                    f"{reference} has digest {pushed}, not the tested {image.digest}",
                    hint="The registry holds a different image than the one that was tested; the release is stopped.",
                )
            return {"reference": f"{self.host}/{self.repo}@{pushed}", "digest": pushed}
        raise ValueError(name)


def choose_engine(build: BuildRecord) -> ContainerEngine | None:
    """The container engine that runs the image (`$CONVEYOR_ENGINE` or the first that works), or None for a
    process (`CONVEYOR_ENGINE=process`, a build without an image, or no engine installed)."""
    from conveyor.package.engine import NoEngine, find_engine

    if os.environ.get(ENGINE_VARIABLE, "").strip().lower() == "process" or not build.image:
        return None
    try:
        engine = find_engine()
    except NoEngine:
        return None
    return engine if engine.can_run else None


def _engine_named(name: str) -> ContainerEngine | None:
    from conveyor.package.engine import find_engine

    return None if name == "process" else find_engine(name)


def _manifest_config(archive: Path, manifest_digest: str) -> str:
    """The image id (config digest) of manifest `manifest_digest` in an OCI archive."""
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("blobs/sha256/" + manifest_digest.removeprefix("sha256:"))
        assert handle is not None
        return str(json.loads(handle.read())["config"]["digest"])


class LocalTarget:
    """Run the image on 127.0.0.1:PORT (podman or docker; without an engine, `conveyor serve` as a process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.port = int(url.removeprefix("local://").strip("/"))
        except ValueError:
            raise ConfigError(f"release target {url!r} must be local://PORT (e.g. local://8701)") from None

    def steps(self) -> list[str]:
        return ["load", "run", "ready"]

    def container_name(self, context: DeployContext) -> str:
        return f"conveyor-{context.project_name}-{context.stage}"

    def run_dir(self, context: DeployContext) -> Path:
        folder = context.state_dir / "release" / "local"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def image_reference(self, context: DeployContext) -> str:
        return f"localhost/conveyor-{context.project_name}:{context.stage}-{release_tag(context)}"

    def run_step(self, name: str, context: DeployContext) -> dict[str, Any]:
        if "load" in context.done:
            engine = _engine_named(context.done["load"]["engine"])
        else:
            engine = choose_engine(context.build)
        if name == "load":
            if engine is None:
                return {"engine": "process"}
            image = _require_image(context)
            archive = image.archive
            reference = self.image_reference(context)
            expected = _manifest_config(archive, image.digest)
            engine.run("load", "-i", str(archive), timeout=1800)
            engine.run("tag", expected.removeprefix("sha256:"), reference)
            loaded = engine.image_id(reference)
            if loaded != expected:
                raise CheckFailed(
                    f"{engine.name} loaded {reference} as image {loaded}, not the tested {expected}",
                    hint="The engine's storage holds a different image under that name; remove it and resume.",
                )
            return {"engine": engine.name, "image": reference, "id": expected}
        if name == "run":
            self.stop(context)
            if engine is None:
                return self._start_process(context)
            container = self.container_name(context)
            out = engine.run(
                "run", "-d", "--name", container,
                "--label", f"conveyor.release={context.release_id}", "--label", f"conveyor.stage={context.stage}",
                "-p", f"127.0.0.1:{self.port}:{CONTAINER_PORT}", context.done["load"]["image"], timeout=300,
            ).stdout  # fmt: skip
            return {"engine": engine.name, "container": container, "handle": out.strip()[:64]}
        if name == "ready":
            return self._wait_ready(context, engine.name if engine else "process")
        raise ValueError(name)

    def stop(self, context: DeployContext) -> None:
        """Stop what runs for this stage now (the previous release's container or process), if anything."""
        pid_file = self.run_dir(context) / f"{context.stage}.pid"
        if pid_file.is_file():
            _stop_process(int(pid_file.read_text().split()[0]))
            pid_file.unlink(missing_ok=True)
        engine = choose_engine(context.build)
        if engine is not None:
            remove = ("rm", "-f", "--time", "10") if engine.name == "podman" else ("rm", "-f")
            engine.run(*remove, self.container_name(context), check=False, timeout=120)

    def _start_process(self, context: DeployContext) -> dict[str, Any]:
        package = context.build.package_dir
        if not package.is_dir():
            raise CheckFailed(f"build {context.build.short} has no package folder to serve", hint="Rebuild it.")
        folder = self.run_dir(context)
        log = (folder / f"{context.stage}.log").open("ab")
        command = [sys.executable, "-m", "conveyor.cli.main", "serve", str(package),
                   "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (folder / f"{context.stage}.pid").write_text(f"{process.pid} {context.release_id}\n")
        return {"engine": "process", "handle": str(process.pid), "log": str(folder / f"{context.stage}.log")}

    def _wait_ready(self, context: DeployContext, engine: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{READY_PATH}"
        timeout = float(os.environ.get(READY_TIMEOUT_VARIABLE, "120"))
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                status = httpx.get(url, timeout=2).status_code
                if status == 200:
                    return {"url": url}
                last = f"HTTP {status}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        hint = f"See `{engine} logs {self.container_name(context)}`." if engine != "process" else "See its log."
        raise CheckFailed(f"{url} was not ready within {timeout:.0f} s (last: {last})", hint=hint)


def _stop_process(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(100):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def target_for(url: str) -> Target:
    if url.startswith("oci://"):
        return OciTarget(url)
    if url.startswith("local://"):
        return LocalTarget(url)
    raise ConveyorError(f"release target {url!r} is not understood", hint="Use oci://HOST/REPO or local://PORT.")
