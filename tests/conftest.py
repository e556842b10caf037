"""Fixtures shared by the whole suite: a census project made by `conveyor init`, trained once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("CONVEYOR_USER", "tester")
# CI systems run the suite with CI=true, under which a ledger's first adoption needs --adopt COMMIT: the tests
# that check that set CI themselves; every other test adopts as on a laptop.
os.environ.pop("CI", None)
os.environ.pop("CONVEYOR_ADOPT", None)
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
# the key that authenticates each checkout's kept ledger prefix is the suite's own, never the user's
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="conveyor-tests-state-")

INSTALL = "podman is not installed: scripts/install-container-engine.sh installs it"
PRINCIPALS = ("ci", "alice", "bob", "carol")


@dataclass(frozen=True)
class Keyring:
    """ed25519 keys made by ssh-keygen for the principals ci, alice, bob and carol (all in `allowed_signers`),
    and for `outsider` (not in it)."""

    folder: Path
    allowed_signers: Path

    def key(self, name: str) -> Path:
        """The private key file of `name` (its public half is beside it, NAME.pub)."""
        return self.folder / name

    def public(self, name: str) -> str:
        return (self.folder / f"{name}.pub").read_text().strip()


def make_keyring(folder: Path) -> Keyring:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# principals of the test suite"]
    for name in (*PRINCIPALS, "outsider"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)], check=True
        )
        if name != "outsider":
            lines.append(f"{name} {(folder / f'{name}.pub').read_text().strip()}")
    allowed = folder / "allowed_signers"
    allowed.write_text("\n".join(lines) + "\n")
    return Keyring(folder, allowed)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    """The suite's signing keys: ci (the builder), alice, bob and carol, and an outsider."""
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is not installed: scripts/install-system-deps.sh installs openssh-client")
    return make_keyring(tmp_path_factory.mktemp("keys"))


def make_project(base: Path, name: str) -> Path:
    """`conveyor init` of a small census project with its own secrets and lakes under `base`."""
    from conveyor.cli.main import main

    root = base / name
    code = main(
        ["init", str(root), "--secrets-dir", str(base / "secrets"), "--lakes-dir", str(base / "lakes"), "--rows", "300"]
    )
    assert code == 0
    return root


def trust_keys(root: Path, keyring: Keyring) -> None:
    """List the keyring's principals in the project's allowed_signers (as a team commits their keys)."""
    allowed = root / "allowed_signers"
    allowed.write_text(allowed.read_text() + keyring.allowed_signers.read_text())


@pytest.fixture(scope="session")
def census(tmp_path_factory, keys: Keyring) -> Path:
    """A project with one model version trained in dev, whose allowed_signers lists the suite's keys (the package
    and testing rooms' tests share it)."""
    from conveyor.cli.main import main

    base = tmp_path_factory.mktemp("pkg")
    root = make_project(base, "census")
    trust_keys(root, keys)
    assert main(["train", "--env", "dev", "--project", str(root)]) == 0
    return root


@pytest.fixture(scope="session")
def image_build(census, keys: Keyring):
    """The project's build with an image (podman), made once, its provenance signed by ci."""
    if not shutil.which("podman"):
        pytest.skip(INSTALL)
    from conveyor.config import load_project
    from conveyor.package import build
    from conveyor.package.engine import find_engine

    project = load_project(census)
    record = build(
        project, project.environment("dev"), model_spec="worst_regression/1", engine="podman", key=keys.key("ci")
    )
    yield record
    find_engine("podman").remove_image(record.image.reference)


@pytest.fixture(scope="session")
def census_project(tmp_path_factory, keys: Keyring) -> Path:
    """A fresh census project with private secret files and dev/stage/prod lakes (no model trained)."""
    from conveyor.examples.scaffold import init_project

    root = tmp_path_factory.mktemp("census-home")
    made = init_project(root / "census", secrets_dir=root / "secrets", lakes_dir=root / "lakes", rows=600)
    trust_keys(made.root, keys)
    return made.root


@pytest.fixture(scope="session")
def trained_project(census_project: Path) -> Path:
    """The census project with one model version trained in dev."""
    from conveyor.compute import train
    from conveyor.config import load_project

    out: list[str] = []
    train(load_project(census_project).environment("dev"), out=out.append, err=out.append)
    return census_project
