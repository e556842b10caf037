"""`local://PORT`: run the recorded image (podman or docker; without one, the package as a process) on 127.0.0.1.

A new release starts beside the one serving now, on a port of its own; once its /health/ready answers with the
release's package digest, the stage's forwarder on PORT sends new connections to it (after checking the route
against the verified ledger), and only then is the old server stopped. A release whose
server never becomes ready is stopped again and fails, and the old one goes on serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed, ConfigError
from conveyor.release.routes import Ack, NotServing, Route, Split, ack_path, listening_path, served_package
from conveyor.release.shipment import Shipment, check_image, check_package
from conveyor.release.targets.base import DeployContext, RolloutPlan, StepResult, Target, release_tag

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.package.engine import ContainerEngine

CONTAINER_PORT = 8080
ENGINE_VARIABLE = "CONVEYOR_ENGINE"
READY_TIMEOUT_VARIABLE = "CONVEYOR_READY_TIMEOUT"
PROCESS = "process"
LOW_SHARES = 2  # a shadow container's CPU shares (the least an engine takes; the default is 1024)


def choose_engine(shipment: Shipment) -> ContainerEngine | None:
    """The container engine that runs the image (`$CONVEYOR_ENGINE` or the first that works), or None for a
    process (`CONVEYOR_ENGINE=process`, a release without an image, or no engine installed)."""
    from conveyor.package.engine import NoEngine, find_engine

    if os.environ.get(ENGINE_VARIABLE, "").strip().lower() == PROCESS or shipment.image_digest is None:
        return None
    try:
        engine = find_engine()
    except NoEngine:
        return None
    return engine if engine.can_run else None


def engine_named(name: str | None) -> ContainerEngine | None:
    from conveyor.package.engine import find_engine

    return None if name in (None, PROCESS) else find_engine(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # reaped: it was this process's child and it exited
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lowest_priority(pid: int) -> None:
    """Give the session `pid` leads the lowest CPU priority. A nice value orders a process only among those of its
    own session where the kernel schedules each session as a group (Linux's autogroup, on by default), so a server
    started with `nice -n 19` in a session of its own would still take an equal share of a busy core: the
    session's nice value is set too. Without autogroup the file is absent and the process's nice value rules."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write("19")


def stop_process(pid: int, timeout: float = 10) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL it when it has not gone within `timeout` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Backend:
    """One server of the stage: a container (engine + name) or a process (pid), on its own port. A shadow's server
    runs `low`: at the lowest CPU priority (nice 19 for it and its session, or 2 CPU shares in a container), so
    that on a busy host the copies it answers take no time from the live server's callers (copies it falls behind
    on are dropped)."""

    release: int
    port: int
    engine: str
    handle: str
    low: bool = False


class LocalTarget(Target):
    """Serve the stage on 127.0.0.1:PORT through its forwarder; each release runs beside the previous one first."""

    scheme = "local"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            self.port = int(url.removeprefix("local://").strip("/"))
        except ValueError:
            raise ConfigError(f"release target {url!r} must be local://PORT (e.g. local://8701)") from None

    def steps(self) -> list[str]:
        return ["load", "start", "switch"]

    def run_step(self, name: str, context: DeployContext) -> StepResult:
        if name == "load":
            return self._load(context)
        if name == "start":
            return self._start(context)
        if name == "switch":
            return self._switch(context)
        if name == "split":
            return self._split(context)
        raise ValueError(f"{type(self).__name__} has no step {name!r}")

    # --- where things are ----------------------------------------------------------------------------------
    @staticmethod
    def run_dir(state_dir: Path) -> Path:
        folder = state_dir / "release" / "local"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def route_file(self, state_dir: Path, stage: str) -> Path:
        return self.run_dir(state_dir) / f"{stage}.route"

    def _backend_file(self, state_dir: Path, stage: str, release: int) -> Path:
        return self.run_dir(state_dir) / f"{stage}-r{release}.backend"

    def _forwarder_pid(self, state_dir: Path, stage: str) -> Path:
        return self.run_dir(state_dir) / f"{stage}.forwarder.pid"

    @staticmethod
    def project_id(project_name: str, state_dir: Path) -> str:
        """The project's name and a hash of this checkout's state folder: two checkouts of one project on a host
        never share a container or an image name."""
        checkout = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
        return f"{project_name}-{checkout}"

    def image_reference(self, context: DeployContext) -> str:
        project = self.project_id(context.project_name, context.state_dir)
        return f"localhost/conveyor-{project}:{context.stage}-{release_tag(context)}"

    def container_name(self, context: DeployContext) -> str:
        project = self.project_id(context.project_name, context.state_dir)
        return f"conveyor-{project}-{context.stage}-r{context.release_id}"

    # --- steps ---------------------------------------------------------------------------------------------
    def _engine(self, context: DeployContext) -> ContainerEngine | None:
        done = context.done.get("load")
        return engine_named(done.engine) if done else choose_engine(context.shipment)

    def _load(self, context: DeployContext) -> StepResult:
        engine = self._engine(context)
        if engine is None:
            check_package(context.shipment)
            return StepResult(engine=PROCESS)
        archive, _ = context.shipment.require_image(context.stage)
        expected = check_image(context.shipment, context.stage)
        reference = self.image_reference(context)
        engine.run("load", "-i", str(archive), timeout=1800)
        engine.run("tag", expected.removeprefix("sha256:"), reference)
        loaded = engine.image_id(reference)
        if loaded != expected:
            raise CheckFailed(
                f"{engine.name} loaded {reference} as image {loaded}, not the tested {expected}",
                hint="The engine's storage holds a different image under that name; remove it and resume.",
            )
        return StepResult(engine=engine.name, image=reference, digest=expected)

    def _start(self, context: DeployContext) -> StepResult:
        """Start the release's server on a port of its own and wait until it is ready; stop it if it never is."""
        engine = self._engine(context)
        low = context.rollout is not None and context.rollout.mode == "shadow"
        backend = self._running_backend(context, engine)
        if backend is not None and backend.low != low:
            self._stop_backend(context.state_dir, context.stage, backend)
            backend = None
        if backend is None:
            backend = self._start_backend(context, engine, low)
        try:
            self._wait_ready(backend, context.shipment.package_digest)
        except CheckFailed:
            self._stop_backend(context.state_dir, context.stage, backend)
            raise
        return StepResult(
            engine=backend.engine,
            handle=backend.handle,
            url=f"http://127.0.0.1:{backend.port}",
            log=str(self._log(context.state_dir, context.stage, context.release_id)) if engine is None else None,
        )

    def _start_backend(
        self, context: DeployContext, engine: ContainerEngine | None, low: bool, port: int | None = None
    ) -> Backend:
        port = port or free_port()
        if engine is None:
            backend = self._start_process(context, port, low)
        else:
            backend = self._start_container(context, engine, port, low)
        self._backend_file(context.state_dir, context.stage, context.release_id).write_text(
            json.dumps(backend.__dict__)
        )
        return backend

    def _at_normal_priority(self, context: DeployContext, backend: Backend) -> Backend:
        """A shadow's server that becomes live is started anew at normal priority (a nice value only a privileged
        user may lower), on the same port: the one the ledger recorded for the release."""
        self._stop_backend(context.state_dir, context.stage, backend)
        engine = None if backend.engine == PROCESS else engine_named(backend.engine)
        backend = self._start_backend(context, engine, low=False, port=backend.port)
        try:
            self._wait_ready(backend, context.shipment.package_digest)
        except CheckFailed:
            self._stop_backend(context.state_dir, context.stage, backend)
            raise
        return backend

    def _switch(self, context: DeployContext) -> StepResult:
        """Route PORT to the new server, wait until the forwarder uses that route, then stop the older servers."""
        backend = self._backend(context.state_dir, context.stage, context.release_id)
        if backend is None:
            raise CheckFailed(f"the server of release {context.release_id} is gone", hint="Resume the release.")
        if backend.low:
            backend = self._at_normal_priority(context, backend)
        route_file = self.route_file(context.state_dir, context.stage)
        serial = 1
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            serial = Route.read(route_file).serial + 1
        digest = context.shipment.package_digest
        Route(backend.port, context.release_id, digest, serial).write(route_file)
        self._ensure_forwarder(context.state_dir, context.stage, route_file)
        self._await_route(context.stage, route_file, serial)
        self._check_served(context.stage, digest)
        for other in self._backends(context.state_dir, context.stage):
            if other.release != context.release_id:
                self._stop_backend(context.state_dir, context.stage, other)
        return StepResult(reference=f"http://127.0.0.1:{self.port}", engine=backend.engine, handle=backend.handle)

    def _split(self, context: DeployContext) -> StepResult:
        """Route the candidate's share (or a shadow copy) of PORT's requests to the new server, beside the live."""
        plan = context.rollout
        if plan is None:
            raise CheckFailed(f"release {context.release_id} is not a rollout; it has no split step")
        backend = self._backend(context.state_dir, context.stage, context.release_id)
        if backend is None:
            raise CheckFailed(f"the server of release {context.release_id} is gone", hint="Resume the release.")
        split = Split(backend.port, context.release_id, context.shipment.package_digest, plan.mode, plan.weight)
        self._route_split(context.state_dir, context.stage, split)
        share = "a copy of every request" if plan.mode == "shadow" else f"{plan.weight}% of requests"
        return StepResult(
            reference=f"http://127.0.0.1:{self.port}",
            engine=backend.engine,
            handle=backend.handle,
            note=f"{plan.mode}: {share}",
        )

    def _route_split(self, state_dir: Path, stage: str, split: Split | None) -> Route:
        """Rewrite the stage's route with `split` beside the release it serves, and wait until the forwarder took it."""
        route_file = self.route_file(state_dir, stage)
        try:
            current = Route.read(route_file)
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckFailed(f"{stage} serves nothing on port {self.port}, so nothing can be split") from None
        route = Route(current.port, current.release, current.digest, current.serial + 1, split)
        route.write(route_file)
        self._ensure_forwarder(state_dir, stage, route_file)
        self._await_route(stage, route_file, route.serial)
        return route

    def reroute(self, state_dir: Path, stage: str, candidate: int, digest: str, plan: RolloutPlan | None) -> list[str]:
        route_file = self.route_file(state_dir, stage)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            current = Route.read(route_file)
            if plan is None and current.release == candidate:  # aborted after the switch: serve the live again
                return [f"release {candidate} serves {stage} already; resume the live release's deployment"]
        backend = self._backend(state_dir, stage, candidate)
        if plan is None:
            self._route_split(state_dir, stage, None)
            done = [f"port {self.port} serves the live release alone"]
            if backend is not None:
                self._stop_backend(state_dir, stage, backend)
                done.append(f"stopped release {candidate} ({backend.engine} {backend.handle})")
            return done
        if backend is None:
            raise CheckFailed(f"the server of release {candidate} is gone", hint=f"Abort the rollout of {candidate}.")
        split = Split(backend.port, candidate, digest, plan.mode, plan.weight)
        self._route_split(state_dir, stage, split)
        return [f"port {self.port} sends {plan.weight}% of requests to release {candidate}"]

    # --- servers -------------------------------------------------------------------------------------------
    def _log(self, state_dir: Path, stage: str, release: int) -> Path:
        return self.run_dir(state_dir) / f"{stage}-r{release}.log"

    def _start_process(self, context: DeployContext, port: int, low: bool) -> Backend:
        package = check_package(context.shipment)
        log = self._log(context.state_dir, context.stage, context.release_id).open("ab")
        command = [sys.executable, "-m", "conveyor.serving", str(package), "--host", "127.0.0.1", "--port", str(port)]
        nice = shutil.which("nice")
        if low and nice is not None:
            command = [nice, "-n", "19", *command]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if low:
            lowest_priority(process.pid)
        return Backend(context.release_id, port, PROCESS, str(process.pid), low)

    def _start_container(self, context: DeployContext, engine: ContainerEngine, port: int, low: bool) -> Backend:
        name = self.container_name(context)
        engine.run("rm", "-f", name, check=False, timeout=120)
        image = context.done["load"].image
        assert image is not None  # noqa: S101 -- narrows for mypy: the load step recorded the image
        labels = {
            "conveyor.project": self.project_id(context.project_name, context.state_dir),
            "conveyor.stage": context.stage,
            "conveyor.release": str(context.release_id),
            "conveyor.package": context.shipment.package_digest,
        }
        options = [part for key, value in labels.items() for part in ("--label", f"{key}={value}")]
        published = f"127.0.0.1:{port}:{CONTAINER_PORT}"
        if low:
            options += ["--cpu-shares", str(LOW_SHARES)]
        engine.run("run", "-d", "--name", name, *options, "-p", published, image, timeout=300)
        return Backend(context.release_id, port, engine.name, name, low)

    def _backend(self, state_dir: Path, stage: str, release: int) -> Backend | None:
        try:
            return Backend(**json.loads(self._backend_file(state_dir, stage, release).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _backends(self, state_dir: Path, stage: str) -> list[Backend]:
        found = []
        for path in sorted(self.run_dir(state_dir).glob(f"{stage}-r*.backend")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(Backend(**json.loads(path.read_text())))
        return found

    def _running_backend(self, context: DeployContext, engine: ContainerEngine | None) -> Backend | None:
        backend = self._backend(context.state_dir, context.stage, context.release_id)
        return backend if backend is not None and self._backend_alive(backend) else None

    def _backend_alive(self, backend: Backend) -> bool:
        if backend.engine == PROCESS:
            return _alive(int(backend.handle))
        engine = engine_named(backend.engine)
        assert engine is not None  # noqa: S101 -- narrows for mypy: a backend not a process names a known engine
        state = engine.run("inspect", "--format", "{{.State.Running}}", backend.handle, check=False, timeout=60)
        return state.returncode == 0 and state.stdout.strip() == "true"

    def _wait_ready(self, backend: Backend, digest: str) -> None:
        """Wait until the backend says it is ready and serves `digest`; CheckFailed when it never does, or serves
        another package (a port taken by another server)."""
        timeout = float(os.environ.get(READY_TIMEOUT_VARIABLE, "120"))
        deadline = time.monotonic() + timeout
        last = "no answer"
        checked = time.monotonic()
        url = f"http://127.0.0.1:{backend.port}"
        while time.monotonic() < deadline:
            try:
                served = served_package(backend.port)
            except NotServing as why:
                last = str(why)
            else:
                if served == digest:
                    return
                raise CheckFailed(
                    f"the server at {url} serves package {served or '(unnamed)'}, not {digest} of release "
                    f"{backend.release}; the server already serving the stage goes on serving",
                    hint="Another program answers on that port, or the image does not hold the package. Resume.",
                )
            if time.monotonic() - checked > 1:
                checked = time.monotonic()
                if not self._backend_alive(backend):
                    last = "the server exited"
                    break
            time.sleep(0.2)
        where = f"`{backend.engine} logs {backend.handle}`" if backend.engine != PROCESS else "its log"
        raise CheckFailed(
            f"the new server of release {backend.release} was not ready at {url}/health/ready ({last}); the server "
            "already serving the stage goes on serving",
            hint=f"See {where}. Fix the build, then release it again.",
        )

    def _stop_backend(self, state_dir: Path, stage: str, backend: Backend) -> None:
        if backend.engine == PROCESS:
            stop_process(int(backend.handle))
        else:
            engine = engine_named(backend.engine)
            assert engine is not None  # noqa: S101 -- narrows for mypy: a backend not a process names a known engine
            remove = ("rm", "-f", "--time", "10") if engine.name == "podman" else ("rm", "-f")
            engine.run(*remove, backend.handle, check=False, timeout=120)
        self._backend_file(state_dir, stage, backend.release).unlink(missing_ok=True)

    # --- the forwarder -------------------------------------------------------------------------------------
    def _forwarder_running(self, state_dir: Path, stage: str) -> int | None:
        path = self._forwarder_pid(state_dir, stage)
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def _ensure_forwarder(self, state_dir: Path, stage: str, route_file: Path) -> None:
        if self._forwarder_running(state_dir, stage) is not None:
            return
        listening = listening_path(route_file)
        listening.unlink(missing_ok=True)
        log = (self.run_dir(state_dir) / f"{stage}.forwarder.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "conveyor.release.forwarder",
            "--port",
            str(self.port),
            "--route",
            str(route_file),
            "--project",
            str(state_dir.parent),
            "--stage",
            stage,
        ]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._forwarder_pid(state_dir, stage).write_text(f"{process.pid} {self.port}\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _alive(process.pid):
                raise CheckFailed(
                    f"the forwarder of {stage} could not listen on 127.0.0.1:{self.port}",
                    hint=f"Is another program using port {self.port}? See {log.name}.",
                )
            with contextlib.suppress(OSError, ValueError):
                if int(listening.read_text()) == process.pid:
                    return
            time.sleep(0.1)
        stop_process(process.pid)
        raise CheckFailed(f"the forwarder of {stage} did not start listening on 127.0.0.1:{self.port}")

    def _await_route(self, stage: str, route_file: Path, serial: int) -> None:
        """Open a connection through the port (the forwarder re-reads its route then) until it answers the serial:
        taken, or refused with the reason (the ledger does not name that server)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                ack = Ack.read(ack_path(route_file))
                if ack.serial >= serial and ack.refused:
                    raise CheckFailed(
                        f"the forwarder of {stage} refused the route to release {ack.release}: {ack.refused}",
                        hint="The stage goes on serving what it served. See `conveyor audit verify`.",
                    )
                if ack.serial >= serial:
                    return
            time.sleep(0.05)
        raise CheckFailed(f"the forwarder on port {self.port} did not take the new route within 60 s")

    def _check_served(self, stage: str, digest: str) -> None:
        """The stage's own port answers with the package of the release (no other program holds the port)."""
        try:
            served = served_package(self.port, timeout=5)
        except NotServing as why:
            raise CheckFailed(f"port {self.port} of {stage} is not ready after the switch ({why})") from None
        if served != digest:
            raise CheckFailed(
                f"port {self.port} of {stage} serves package {served or '(unnamed)'}, not {digest}",
                hint=f"Another program may hold port {self.port}; stop it and resume the release.",
            )

    def stop(self, project_name: str, state_dir: Path, stage: str) -> list[str]:
        """Stop the stage's forwarder and every server it runs; returns what was stopped."""
        stopped = []
        pid = self._forwarder_running(state_dir, stage)
        if pid is not None:
            stop_process(pid)
            stopped.append(f"forwarder {pid} on port {self.port}")
        self._forwarder_pid(state_dir, stage).unlink(missing_ok=True)
        for backend in self._backends(state_dir, stage):
            self._stop_backend(state_dir, stage, backend)
            stopped.append(f"release {backend.release} ({backend.engine} {backend.handle})")
        route_file = self.route_file(state_dir, stage)
        for path in (route_file, ack_path(route_file), listening_path(route_file)):
            path.unlink(missing_ok=True)
        return stopped
