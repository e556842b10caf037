"""Helpers of the release tests: signing keys, small real OCI images (a static busybox serving /health/ready),
attested build records, a clock to move, free ports and MLflow alias look-ups."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conveyor.release.releases import Releases
    from conveyor.trust import SigningKey

BUSYBOX = Path("/bin/busybox")
MODEL = "census_model"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_oci_archive(path: Path, label: str, *, package: str, broken: bool = False) -> tuple[str, str]:
    """An OCI archive whose image serves /health/ready (naming `package`, as conveyor's server does) and /release
    (= `label`) on 8080; returns (digest, id).

    A `broken` image exits at once (its server never becomes ready)."""
    layer = _tar(
        {
            "bin/busybox": BUSYBOX.read_bytes(),
            "www/health/ready": json.dumps({"status": "ready", "package": package}).encode(),
            "www/release": label.encode(),
        },
        dirs=("bin", "www", "www/health"),
    )
    compressed = gzip.compress(layer, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/busybox", "false"]
                if broken
                else ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                "ExposedPorts": {"8080/tcp": {}},
                "StopSignal": "SIGKILL",
                "Labels": {"conveyor.test": label},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(compressed),
                    "size": len(compressed),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for blob in (config, manifest, compressed):
        files["blobs/sha256/" + _digest(blob)[7:]] = blob
    path.write_bytes(_tar(files))
    return _digest(manifest), _digest(config)


def tamper_layer(archive: Path) -> None:
    """Flip one byte inside the image's layer blob, keeping the archive a valid tar."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    largest = max(range(len(members)), key=lambda i: len(members[i][1]))
    info, content = members[largest]
    changed = bytearray(content)
    changed[len(changed) // 2] ^= 0xFF
    members[largest] = (info, bytes(changed))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
    archive.write_bytes(buffer.getvalue())


PRINCIPALS = ("ci", "alice", "bob", "carol", "dave", "erin")


@dataclass(frozen=True)
class Keys:
    """ed25519 keys made by ssh-keygen: ci (the builder), alice, bob, dave (prod's approvers), carol and erin
    (requesters), all in `allowed_signers`; `outsider` is not in it."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def __getattr__(self, name: str) -> SigningKey:
        if name.startswith("_") or not (self.folder / name).is_file():
            raise AttributeError(name)
        from conveyor.trust import load_signing_key

        return load_signing_key(self.folder / name)

    @property
    def allowed_signers(self) -> str:
        return (self.folder / "allowed_signers").read_text()


def make_keys(folder: Path) -> Keys:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in (*PRINCIPALS, "outsider"):
        if not (folder / name).is_file():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)], check=True
            )
        if name != "outsider":
            lines.append(f"{name} {(folder / f'{name}.pub').read_text().strip()}")
    (folder / "allowed_signers").write_text("\n".join(lines) + "\n")
    return Keys(folder)


KEYS: list[Keys] = []  # set once per session by the `keys` fixture, for the helpers below


def keys() -> Keys:
    return KEYS[0]


def write_build(
    project_root: Path,
    label: str,
    *,
    model_version: str | None = "1",
    tests_ok: bool | None = True,
    gates_ok: bool | None = True,
    env: str = "stage",
    signer: str = "ci",
    broken: bool = False,
    gate_rules: dict[str, str] | None = None,
    r2: float = 0.1,
    model_tags: dict[str, str] | None = None,
    score: str | None = None,
) -> Path:
    """A build laid out as `conveyor build` + `test` + `gate` leave it: package, manifest, archives, build.json, and
    the provenance, test and gate attestations the package and testing rooms write, signed by `signer`.

    A `broken` build's image exits at once instead of serving; `score` replaces its score.py. The gate attestation
    records the project file's `[gates]` (its `metrics` replaced by `gate_rules` when given) and the measured `r2`.
    """
    from conveyor.config import load_project
    from conveyor.config.gates import GatePolicy
    from conveyor.package.archive import write_archive
    from conveyor.package.attestations import AttestationKind, write_attestation
    from conveyor.package.manifest import PackageManifest, hash_files
    from conveyor.package.provenance import provenance_statement
    from conveyor.package.record import BuildRecord
    from conveyor.testing.reports import JunitOutcomes
    from conveyor.testing.statements import gates_statement, tests_statement
    from conveyor.trust import AllowedSigners, identify

    staging = project_root / ".conveyor" / "staging" / label
    package = staging / "package"
    (package / "model").mkdir(parents=True, exist_ok=True)
    default = f"def init():\n    pass\n\n\ndef run(raw):\n    return {{'label': {label!r}}}\n"
    (package / "score.py").write_text(score or default)
    (package / "model" / "model.pkl").write_bytes(label.encode() * 10)
    (package / "requirements.lock").write_text("")
    tags = dict(model_tags or {"training_sandbox": "bwrap", "git_dirty": "false"})
    model = {"name": MODEL, "version": model_version, "run_id": None, "tags": tags} if model_version else None
    manifest = PackageManifest(
        {
            "schema": 1,
            "project": "census",
            "model": model,
            "requirements": "requirements.lock",
            "files": hash_files(package),
        }
    )
    manifest.write(package)
    digest = manifest.digest
    folder = project_root / ".conveyor" / "builds" / digest.removeprefix("sha256:")
    folder.mkdir(parents=True, exist_ok=True)
    package = package.rename(folder / "package")
    archive = write_archive(package, folder / "package.tar")
    image_archive = folder / "image.oci.tar"
    image_digest, image_id = write_oci_archive(image_archive, label, package=digest, broken=broken)
    record = {
        "schema": 1,
        "project": "census",
        "env": env,
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": signer,
        "package": {"digest": digest, "dir": str(package), "archive": str(archive)},
        "model": model,
        "image": {
            "engine": "podman",
            "reference": f"localhost/census:{digest[7:19]}",
            "id": image_id,
            "digest": image_digest,
            "archive": str(image_archive),
        },
        "tests": None if tests_ok is None else {"ok": tests_ok},
        "gates": None if gates_ok is None else {"ok": gates_ok},
    }
    (folder / "build.json").write_text(json.dumps(record, indent=2))
    built = BuildRecord.load(folder / "build.json")
    identity = identify(AllowedSigners.parse(keys().allowed_signers), getattr(keys(), signer))
    write_attestation(built, AttestationKind.PROVENANCE, provenance_statement(built, identity.principal), identity)
    tests = project_root / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "test_score.py").write_text("def test_nothing():\n    pass\n")
    if tests_ok is not None:
        outcomes = JunitOutcomes(("test_score::test_nothing",), () if tests_ok else ("test_score::test_fails",), ())
        statement = tests_statement(built, tests_ok, outcomes, tests, ("image", image_digest))
        write_attestation(built, AttestationKind.TESTS, statement, identity)
    if gates_ok is not None:
        evaluate = project_root / "evaluate.py"
        evaluate.write_text("def evaluate(model, frame):\n    return {'r2': 0.1}\n")
        report = {"ok": gates_ok, "champion": None, "results": [{"metric": "r2", "passed": gates_ok}]}
        declared = GatePolicy.from_config(load_project(project_root).config.gates)
        if gate_rules is not None:
            declared = GatePolicy(tuple(sorted(gate_rules.items())), declared.eval_data, declared.secrets)
        statement = gates_statement(built, report, {"r2": r2}, "sha256:" + "0" * 64, evaluate, declared)
        write_attestation(built, AttestationKind.GATES, statement, identity)
    return folder / "build.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alias_version(uri: str, alias: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL, alias).version)
    except MlflowException:
        return None


class FakeClock:
    """An injectable clock the tests move forward (it starts now, as another process's clock would)."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


def build(desk: Releases, label: str, **kwargs: object) -> Path:
    return write_build(desk.project.root, label, **kwargs)  # type: ignore[arg-type]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`conveyor ARGS` in this process: (exit code, stdout, stderr)."""
    from conveyor.cli.main import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
