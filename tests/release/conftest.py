"""Real services for release tests, started by scripts/install-release-services.sh: PostgreSQL, two registries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import release_support
import sqlalchemy as sa
from release_support import BUSYBOX, MODEL, FakeClock, Keys, free_port, make_keys

from conveyor.config import load_project
from conveyor.release.ledger import Ledger
from conveyor.release.releases import Releases

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-release-services.sh"


def _service(*args: str) -> str:
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:  # installed by `make test`: a service that will not start is a failure, not a skip
        pytest.fail(f"{SCRIPT.name} {args[0]} could not start it: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def service_dirs() -> Iterator[list[Path]]:
    started: list[Path] = []
    yield started
    for folder in started:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, check=False, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(service_dirs: list[Path]) -> str:
    folder = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    service_dirs.append(folder)
    return _service("postgres", str(folder), str(free_port()))


@pytest.fixture(scope="session")
def registries(service_dirs: list[Path]) -> dict[str, str]:
    """Two local OCI registries, one for qa and one for prod: stage → HOST:PORT."""
    found = {}
    for stage in ("qa", "prod"):
        folder = Path(tempfile.mkdtemp(prefix=f"conveyor-registry-{stage}-"))
        service_dirs.append(folder)
        found[stage] = _service("registry", str(folder), str(free_port()))
    if not shutil.which("skopeo"):
        pytest.skip(f"skopeo is not installed ({SCRIPT.name} install installs it)")
    return found


@pytest.fixture(scope="session")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow registry (sqlite) holding versions 1-4 of the model, shared by the session's projects."""
    from mlflow import MlflowClient

    from conveyor.registry.store import quiet_mlflow

    quiet_mlflow()
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(4):
        client.create_model_version(MODEL, source=str(folder / "model"))
    return uri


@pytest.fixture(scope="session")
def logged_model_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow registry (sqlite) whose version 1 of the model has real artifacts, as `conveyor train` leaves."""
    from mlflow import MlflowClient

    from conveyor.registry.store import quiet_mlflow

    quiet_mlflow()
    folder = tmp_path_factory.mktemp("mlflow-logged")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("census", artifact_location=(folder / "artifacts").as_uri())
    run = client.create_run(experiment)
    model = folder / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(model), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return uri


@pytest.fixture(scope="session", autouse=True)
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The release tests' signing keys (ci, alice, bob, carol, dave, erin; and an outsider)."""
    if not shutil.which("ssh-keygen"):
        pytest.fail("ssh-keygen is not installed: scripts/install-system-deps.sh installs openssh-client")
    made = make_keys(tmp_path_factory.mktemp("release-keys"))
    release_support.KEYS[:] = [made]
    return made


@pytest.fixture(autouse=True)
def _no_key_or_ledger_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Which key signs is always said by the test: no $CONVEYOR_SIGNING_KEY, no git user.signingkey, no
    $CONVEYOR_LEDGER_URL from the machine running the suite."""
    for variable in ("CONVEYOR_SIGNING_KEY", "CONVEYOR_LEDGER_URL", "CONVEYOR_USER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


PROD_POLICY = """approvers = ["alice", "bob", "dave"]
min_approvals = {min_approvals}
requester_may_approve = {requester_may_approve}
timeout = "2d"
requires = ["qa"]
break_glass = ["dave"]"""


@pytest.fixture
def make_project(tmp_path: Path, registries: dict[str, str], mlflow_registry: str, keys: Keys) -> Callable[..., Path]:
    """Write a census project whose qa and prod stages push to the two registries; ci is its builder, and
    allowed_signers (beside conveyor.toml) lists ci, alice, bob, carol, dave and erin."""

    def make(
        *,
        min_approvals: int = 2,
        requester_may_approve: bool = False,
        local_port: int | None = None,
        ledger_url: str | None = None,
        repo: str | None = None,
        stage_registry: str | None = None,
        prod_registry: str | None = None,
        live_policy: str = "",
        watchers: tuple[str, ...] = (),
    ) -> Path:
        root = tmp_path / "census"
        root.mkdir(exist_ok=True)
        repo = repo or f"census-{uuid.uuid4().hex[:8]}"
        policy = PROD_POLICY.format(
            min_approvals=min_approvals, requester_may_approve=str(requester_may_approve).lower()
        )
        text = f"""[project]
name = "census"

[environments.stage]
secrets = "env://"
lake = "file://{tmp_path}/lake"
registry = "{stage_registry or mlflow_registry}"

[environments.prod]
secrets = "env://"
lake = "file://{tmp_path}/lake"
registry = "{prod_registry or mlflow_registry}"

[trust]
allowed_signers = "allowed_signers"
builders = ["ci"]
watchers = {json.dumps(list(watchers))}

[release.qa]
target = "oci://{registries["qa"]}/{repo}"
env = "stage"

[release.prod]
target = "oci://{registries["prod"]}/{repo}"
env = "prod"
{policy}
"""
        if local_port:
            text += f'\n[release.live]\ntarget = "local://{local_port}"\nenv = "stage"\n{live_policy}\n'
        if ledger_url:
            text += f'\n[ledger]\nurl = "{ledger_url}"\n'
        (root / "conveyor.toml").write_text(text)
        (root / "allowed_signers").write_text(keys.allowed_signers)
        return root

    return make


def fresh_postgres_database(server_url: str) -> str:
    """A new, empty database on the test server; returns its URL."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The ledger's database: SQLite in the project, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return fresh_postgres_database(request.getfixturevalue("postgres_server"))
    return "sqlite"


@pytest.fixture
def releases(make_project: Callable[..., Path], clock: FakeClock, backend: str) -> Releases:
    """Releases of a fresh project (prod: 2 of alice/bob/dave, requester may not approve) on each backend."""
    root = make_project(ledger_url=None if backend == "sqlite" else backend)
    project = load_project(root)
    return Releases(project, Ledger.open(project, clock=clock))


@pytest.fixture
def sqlite_releases(make_project: Callable[..., Path], clock: FakeClock) -> Releases:
    project = load_project(make_project())
    return Releases(project, Ledger.open(project, clock=clock))


@pytest.fixture(scope="module")
def podman_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """podman with runc, no rlimits and vfs storage in a folder of its own (see the containers notes)."""
    if not shutil.which("podman") or not BUSYBOX.is_file():
        pytest.skip(f"podman or busybox-static is not installed ({SCRIPT.name} install installs them)")
    folder = tmp_path_factory.mktemp("podman")
    (folder / "containers.conf").write_text('[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n')
    (folder / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{folder}/run"\ngraphroot = "{folder}/graph"\n'
    )
    saved = {k: os.environ.get(k) for k in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONVEYOR_ENGINE")}
    os.environ.update(
        CONTAINERS_CONF=str(folder / "containers.conf"),
        CONTAINERS_STORAGE_CONF=str(folder / "storage.conf"),
        CONVEYOR_ENGINE="podman",
    )
    yield folder
    subprocess.run(["podman", "rm", "-af", "--time", "0"], capture_output=True, check=False, timeout=120)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
